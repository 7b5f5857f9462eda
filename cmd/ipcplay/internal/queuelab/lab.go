package queuelab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/ipc"
	"ipcplay/procs"
)

// Mode says where producers and consumers run: ipcplay's one Mode.
type Mode = base.Mode

const (
	Procs      = base.Procs      // child processes over an ipc.Queue
	Goroutines = base.Goroutines // goroutines over a buffered Go channel
)

// The child roles of the lab; RegisterRoles registers them.
const (
	ProducerRole = "ipcplay-queue-producer"
	ConsumerRole = "ipcplay-queue-consumer"
)

// RegisterRoles registers the lab's child roles with procs.
func RegisterRoles() {
	procs.Register(ProducerRole, producerMain)
	procs.Register(ConsumerRole, consumerMain)
	procs.Register(StufferRole, stufferMain)
}

// Config describes one run.
type Config struct {
	Producers int           // producer processes or goroutines
	Consumers int           // consumer processes or goroutines
	Messages  int           // messages in all, split evenly among producers
	Size      int           // payload bytes per message
	Capacity  int           // queue (or channel) capacity
	Shutdown  Shutdown      // how consumers are told to stop (processes only); "" is ShutdownClose
	Watchdog  time.Duration // how long consumers may take to stop before they are terminated; 0: no limit
	Window    int           // puts in flight per producer and gets sent ahead per consumer (SetPutWindow, SetGetWindow); <= 1: each waits
}

// Validate reports a Config that cannot run.
func (c Config) Validate() error {
	switch {
	case c.Producers < 1:
		return fmt.Errorf("producers %d: want at least 1", c.Producers)
	case c.Consumers < 1:
		return fmt.Errorf("consumers %d: want at least 1", c.Consumers)
	case c.Messages < c.Producers:
		return fmt.Errorf("messages %d: want at least one per producer (%d)", c.Messages, c.Producers)
	case c.Size < 0 || c.Size > 1<<20:
		return fmt.Errorf("size %d: want 0..%d", c.Size, 1<<20)
	case c.Capacity < 1:
		return fmt.Errorf("capacity %d: want at least 1", c.Capacity)
	}
	return nil
}

// share returns how many messages producer p sends.
func (c Config) share(p int) int {
	n := c.Messages / c.Producers
	if p < c.Messages%c.Producers {
		n++
	}
	return n
}

// Shutdown is how the consumers learn that no more messages will come.
type Shutdown string

const (
	// ShutdownClose closes the queue: consumers drain it and get io.EOF.
	ShutdownClose Shutdown = "close"
	// ShutdownPoisonPill puts one "pill" message per consumer after the
	// last message; a consumer that takes a pill stops.
	ShutdownPoisonPill Shutdown = "poison-pill"
	// ShutdownPoisonPillShort is the classic mistake: one pill fewer than
	// consumers, so one consumer waits for ever (until the watchdog).
	ShutdownPoisonPillShort Shutdown = "poison-pill-short"
)

// pillP is the producer number of a poison pill.
const pillP = ^uint32(0)

// Result is what one run measured.
type Result struct {
	Mode       Mode
	Sent       int           // messages the producers reported sent
	Received   int           // messages the consumers got, duplicates included
	Duplicates int           // messages received more than once (extra copies)
	Lost       int           // messages sent and never received
	Reordered  int           // messages a consumer got before an earlier one of the same producer
	Elapsed    time.Duration // first send to last receive
	Setup      time.Duration // starting the producers and consumers
	LatencyP50 time.Duration
	LatencyP99 time.Duration
	LatencyMax time.Duration

	Shutdown    Shutdown      // how consumers were stopped
	Pills       int           // poison pills put
	StopLatency time.Duration // from the last producer's exit to the last consumer's
	Terminated  int           // consumers the watchdog had to stop
}

// MessagesPerSecond is the received messages over the elapsed time.
func (r Result) MessagesPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Received) / r.Elapsed.Seconds()
}

// OK reports whether every message arrived exactly once and in order per
// producer.
func (r Result) OK() bool {
	return r.Lost == 0 && r.Duplicates == 0 && r.Reordered == 0 && r.Received == r.Sent
}

// monotonic reads CLOCK_MONOTONIC in nanoseconds: one clock for every
// process on the machine.
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// message is what travels through the queue.
type message struct {
	//lint:ignore U1000 msgpack reads its tag
	_msgpack struct{} `msgpack:",as_array"`
	P        uint32
	S        uint32
	T        int64 // CLOCK_MONOTONIC ns at send
	Payload  []byte
}

// record is what a consumer keeps per message.
type record struct {
	P, S       uint32
	Sent, Recv int64
}

const recordLen = 24

func (r *record) put(b []byte) {
	binary.LittleEndian.PutUint32(b, r.P)
	binary.LittleEndian.PutUint32(b[4:], r.S)
	binary.LittleEndian.PutUint64(b[8:], uint64(r.Sent))
	binary.LittleEndian.PutUint64(b[16:], uint64(r.Recv))
}

func getRecord(b []byte) record {
	return record{
		P:    binary.LittleEndian.Uint32(b),
		S:    binary.LittleEndian.Uint32(b[4:]),
		Sent: int64(binary.LittleEndian.Uint64(b[8:])),
		Recv: int64(binary.LittleEndian.Uint64(b[16:])),
	}
}

// Run runs cfg in mode and checks and measures what arrived.
func Run(ctx context.Context, mode Mode, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	switch mode {
	case Procs:
		return runProcs(ctx, cfg)
	case Goroutines:
		return runGoroutines(ctx, cfg)
	}
	return Result{}, fmt.Errorf("queue lab: unknown mode %q", mode)
}

func runGoroutines(ctx context.Context, cfg Config) (Result, error) {
	start := time.Now()
	ch := make(chan message, cfg.Capacity)
	recs := make([][]record, cfg.Consumers)
	var cwg, pwg sync.WaitGroup
	for c := range cfg.Consumers {
		recs[c] = make([]record, 0, cfg.Messages/cfg.Consumers+1)
		cwg.Go(func() {
			for m := range ch {
				recs[c] = append(recs[c], record{P: m.P, S: m.S, Sent: m.T, Recv: monotonic()})
			}
		})
	}
	setup := time.Since(start)
	for p := range cfg.Producers {
		pwg.Go(func() {
			for s := range cfg.share(p) {
				// A fresh payload per message, as a process would build one.
				m := message{P: uint32(p), S: uint32(s), Payload: make([]byte, cfg.Size)}
				m.T = monotonic()
				select {
				case ch <- m:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	pwg.Wait()
	close(ch)
	cwg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, context.Cause(ctx)
	}
	res := account(cfg, recs)
	res.Mode, res.Sent, res.Setup, res.Shutdown = Goroutines, cfg.Messages, setup, ShutdownClose
	return res, nil
}

func runProcs(ctx context.Context, cfg Config) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	q, err := ipc.NewQueue(cfg.Capacity)
	if err != nil {
		return Result{}, err
	}
	defer q.Shutdown()
	var cmds []*procs.Cmd
	waited := map[*procs.Cmd]bool{}
	wait := func(c *procs.Cmd) error {
		waited[c] = true
		return c.Wait()
	}
	// On any failure, stop every child and reap it.
	defer func() {
		cancel()
		for _, c := range cmds {
			if !waited[c] {
				c.Wait()
			}
		}
	}()
	startChild := func(ctx context.Context, i int, stdout io.Writer, role string, args ...string) (*procs.Cmd, error) {
		f, err := q.Attach()
		if err != nil {
			return nil, err
		}
		cmd := procs.Command(ctx, role, args...)
		cmd.Index = i
		cmd.ExtraFiles = []*os.File{f}
		cmd.Stdout = stdout
		cmd.Stderr = os.Stderr
		err = cmd.Start()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("start %s %d: %w", role, i, err)
		}
		cmds = append(cmds, cmd)
		return cmd, nil
	}
	// Consumers run under their own context, for the watchdog.
	cctx, cancelConsumers := context.WithCancel(ctx)
	defer cancelConsumers()
	outs := make([]*bytes.Buffer, cfg.Consumers)
	var consumers, producers []*procs.Cmd
	for i := range cfg.Consumers {
		outs[i] = new(bytes.Buffer)
		args := []string{"-window", strconv.Itoa(cfg.Window)}
		if cfg.Shutdown == ShutdownPoisonPill || cfg.Shutdown == ShutdownPoisonPillShort {
			args = append(args, "-pill")
		}
		c, err := startChild(cctx, i, outs[i], ConsumerRole, args...)
		if err != nil {
			return Result{}, err
		}
		consumers = append(consumers, c)
	}
	sentOut := make([]*bytes.Buffer, cfg.Producers)
	for i := range cfg.Producers {
		sentOut[i] = new(bytes.Buffer)
		c, err := startChild(ctx, i, sentOut[i], ProducerRole,
			"-id", strconv.Itoa(i), "-n", strconv.Itoa(cfg.share(i)),
			"-size", strconv.Itoa(cfg.Size), "-window", strconv.Itoa(cfg.Window))
		if err != nil {
			return Result{}, err
		}
		producers = append(producers, c)
	}
	setup := time.Since(start)
	var errs []error
	for _, c := range producers {
		if err := wait(c); err != nil {
			errs = append(errs, err)
		}
	}
	// Every producer is done (or dead): tell the consumers.
	stopStart := time.Now()
	pills := 0
	switch cfg.Shutdown {
	case ShutdownClose, "":
		q.Close() // consumers drain what is left, then get io.EOF
	case ShutdownPoisonPill, ShutdownPoisonPillShort:
		pills = cfg.Consumers
		if cfg.Shutdown == ShutdownPoisonPillShort {
			pills--
		}
		if err := putPills(ctx, q, pills); err != nil {
			return Result{}, err
		}
	default:
		return Result{}, fmt.Errorf("queue lab: unknown shutdown %q", cfg.Shutdown)
	}
	if cfg.Watchdog > 0 {
		wd := time.AfterFunc(cfg.Watchdog, cancelConsumers)
		defer wd.Stop()
	}
	terminated := 0
	for _, c := range consumers {
		if err := wait(c); err != nil {
			var ce *procs.ChildError
			if cctx.Err() != nil && errors.As(err, &ce) {
				switch ce.ExitCode {
				case exitTerminated:
					terminated++
					continue
				case 0:
					// It had exited on its own; the watchdog fired before
					// it was reaped, which os/exec reports as an error.
					continue
				}
			}
			errs = append(errs, err)
		}
	}
	stopLatency := time.Since(stopStart)
	if err := errors.Join(errs...); err != nil {
		return Result{}, fmt.Errorf("queue lab: %w", err)
	}
	sent := 0
	for i, b := range sentOut {
		n, err := strconv.Atoi(string(bytes.TrimSpace(b.Bytes())))
		if err != nil {
			return Result{}, fmt.Errorf("queue lab: producer %d reported %q, not a count", i, b.String())
		}
		sent += n
	}
	recs := make([][]record, cfg.Consumers)
	for i, out := range outs {
		b := out.Bytes()
		if len(b)%recordLen != 0 {
			return Result{}, fmt.Errorf("queue lab: consumer %d wrote %d bytes, not whole records", i, len(b))
		}
		recs[i] = make([]record, 0, len(b)/recordLen)
		for ; len(b) > 0; b = b[recordLen:] {
			recs[i] = append(recs[i], getRecord(b))
		}
	}
	res := account(cfg, recs)
	res.Mode, res.Sent, res.Setup = Procs, sent, setup
	res.Shutdown, res.Pills, res.StopLatency, res.Terminated = cfg.Shutdown, pills, stopLatency, terminated
	if res.Shutdown == "" {
		res.Shutdown = ShutdownClose
	}
	return res, nil
}

// putPills puts n poison pills through an endpoint of the owner's own.
func putPills(ctx context.Context, q *ipc.Queue, n int) error {
	qc, err := q.Client(ipc.QueueOptions{})
	if err != nil {
		return err
	}
	defer qc.Close()
	for i := range n {
		if err := qc.Put(ctx, &message{P: pillP, S: uint32(i)}); err != nil {
			return fmt.Errorf("queue lab: put pill %d: %w", i, err)
		}
	}
	return nil
}

// exitTerminated is the status of a consumer stopped by SIGTERM while it
// waited for a message.
const exitTerminated = 3

// account checks exactly-once delivery and per-producer order, and computes
// throughput and latency, from every consumer's records.
func account(cfg Config, recs [][]record) Result {
	var res Result
	seen := make([][]uint8, cfg.Producers)
	for p := range seen {
		seen[p] = make([]uint8, cfg.share(p))
	}
	var lat []int64
	first, last := int64(0), int64(0)
	for _, rs := range recs {
		next := make([]uint32, cfg.Producers)
		for _, r := range rs {
			res.Received++
			if int(r.P) >= cfg.Producers || int(r.S) >= len(seen[r.P]) {
				res.Duplicates++ // never sent: count it as a bogus copy
				continue
			}
			if seen[r.P][r.S] > 0 {
				res.Duplicates++
			}
			seen[r.P][r.S]++
			if r.S < next[r.P] {
				res.Reordered++
			}
			next[r.P] = r.S + 1
			lat = append(lat, r.Recv-r.Sent)
			if first == 0 || r.Sent < first {
				first = r.Sent
			}
			last = max(last, r.Recv)
		}
	}
	for _, s := range seen {
		for _, n := range s {
			if n == 0 {
				res.Lost++
			}
		}
	}
	res.Elapsed = time.Duration(last - first)
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) time.Duration {
			return time.Duration(lat[min(len(lat)-1, int(p*float64(len(lat))))])
		}
		res.LatencyP50, res.LatencyP99, res.LatencyMax = pct(0.50), pct(0.99), time.Duration(lat[len(lat)-1])
	}
	return res
}

// producerMain puts -n messages on the queue at procs.FDControl and prints
// how many it sent.
func producerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(ProducerRole, flag.ContinueOnError)
	id := fs.Int("id", 0, "producer number")
	n := fs.Int("n", 0, "messages to send")
	size := fs.Int("size", 0, "payload bytes")
	window := fs.Int("window", 1, "puts in flight")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "queue")
	if err != nil {
		return err
	}
	qc, err := ipc.OpenQueue(f, ipc.QueueOptions{PutWindow: *window})
	if err != nil {
		return err
	}
	defer qc.Close()
	m := message{P: uint32(*id), Payload: make([]byte, *size)}
	for s := range *n {
		m.S = uint32(s)
		m.T = monotonic()
		if err := qc.Put(ctx, &m); err != nil {
			return fmt.Errorf("producer %d: put %d: %w", *id, s, err)
		}
	}
	if err := qc.Flush(ctx); err != nil {
		return fmt.Errorf("producer %d: flush: %w", *id, err)
	}
	_, err = fmt.Println(*n)
	return err
}

// consumerMain gets messages until the queue is closed and empty, and
// writes a record per message on stdout.
func consumerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(ConsumerRole, flag.ContinueOnError)
	window := fs.Int("window", 1, "gets sent ahead")
	pill := fs.Bool("pill", false, "stop at a poison pill (the queue is never closed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// SIGTERM (the watchdog) ends a wait; what was received is still
	// reported.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "queue")
	if err != nil {
		return err
	}
	qc, err := ipc.OpenQueue(f, ipc.QueueOptions{GetWindow: *window})
	if err != nil {
		return err
	}
	defer qc.Close()
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	var m message
	var b [recordLen]byte
	for {
		if err := qc.Get(ctx, &m); err != nil {
			if err == io.EOF {
				break
			}
			if ctx.Err() != nil {
				w.Flush()
				qc.Close()
				os.Exit(exitTerminated)
			}
			return fmt.Errorf("consumer: get: %w", err)
		}
		if *pill && m.P == pillP {
			break
		}
		r := record{P: m.P, S: m.S, Sent: m.T, Recv: monotonic()}
		r.put(b[:])
		if _, err := w.Write(b[:]); err != nil {
			return err
		}
	}
	return w.Flush()
}
