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
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/ipc"
	"ipcplay/procs"
	"ipcplay/procs/cost"
)

// The start gate: every child gets one end of a socket pair in slot
// procs.FDExtra, writes one byte there when it is ready (its queue
// endpoint open, its buffers made) and waits for one byte back before it
// moves any value. The parent lets them all go at once, so that neither
// start-up nor the cost counter's attaching is inside the timed window.

// gate is the parent's end of the start gates.
type gate struct{ files []*os.File }

// add makes a gate for cmd.
func (g *gate) add(cmd *procs.Cmd) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("start gate: %w", os.NewSyscallError("socketpair", err))
	}
	g.files = append(g.files, os.NewFile(uintptr(fds[0]), "start-gate"))
	cmd.SetFile(procs.FDExtra, os.NewFile(uintptr(fds[1]), "start-gate-child"))
	return nil
}

// ready waits for child i's byte; a child that dies first makes it EOF.
func (g *gate) ready(i int) error {
	var b [1]byte
	_, err := io.ReadFull(g.files[i], b[:])
	return err
}

// open lets every child go.
func (g *gate) open() error {
	var errs []error
	for _, f := range g.files {
		if _, err := f.Write([]byte{1}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// release waits until every child in cmds is ready (reaping one that
// failed, to report why), starts counting what they and this process
// spend, and opens the gate: the measured run begins. setup runs from
// start until every child was ready.
func (g *gate) release(cmds []*procs.Cmd, wait func(*procs.Cmd) error, start time.Time) (setup time.Duration, m meter, err error) {
	for i, c := range cmds {
		if err := g.ready(i); err != nil {
			if werr := wait(c); werr != nil {
				err = werr
			}
			return 0, meter{}, fmt.Errorf("queue lab: wait for %s %d to be ready: %w", c.Role, c.Index, err)
		}
	}
	setup = time.Since(start)
	pids := []int{os.Getpid()}
	for _, c := range cmds {
		pids = append(pids, c.Pid())
	}
	m.ctr, m.err = cost.Start(pids...)
	if err := g.open(); err != nil {
		m.close()
		return 0, meter{}, fmt.Errorf("queue lab: open the start gate: %w", err)
	}
	g.close()
	g.files = nil
	return setup, m, nil
}

// children are the processes one run started, and which of them were
// reaped, so that what is left can be reaped on the way out.
type children struct {
	cmds   []*procs.Cmd
	waited map[*procs.Cmd]bool
}

// add records a started child.
func (k *children) add(c *procs.Cmd) { k.cmds = append(k.cmds, c) }

// wait reaps c.
func (k *children) wait(c *procs.Cmd) error {
	if k.waited == nil {
		k.waited = map[*procs.Cmd]bool{}
	}
	k.waited[c] = true
	return c.Wait()
}

// reapRest reaps every child not reaped yet; the caller has cancelled
// their context first.
func (k *children) reapRest() {
	for _, c := range k.cmds {
		if !k.waited[c] {
			c.Wait()
		}
	}
}

// A meter is the cost counter of one run, or why there is none.
type meter struct {
	ctr *cost.Counter
	err error
}

// exited hands the counter a reaped child's CPU times.
func (m meter) exited(c *procs.Cmd) {
	if m.err == nil && c.ProcessState() != nil {
		m.ctr.Exited(c.Pid(), c.ProcessState())
	}
}

// stop ends the count and returns it, or why there is none.
func (m meter) stop() (cost.Sample, error) {
	if m.err != nil {
		return cost.Sample{}, m.err
	}
	return m.ctr.Stop()
}

// close releases the counter; it may follow stop.
func (m meter) close() {
	if m.err == nil {
		m.ctr.Close()
	}
}

func (g *gate) close() {
	for _, f := range g.files {
		f.Close()
	}
}

// awaitGo is the child's side of the gate.
func awaitGo() error {
	f, err := procs.ChildFile(procs.FDExtra, procs.Socket, "start gate")
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write([]byte{1}); err != nil {
		return fmt.Errorf("start gate: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return fmt.Errorf("start gate: %w", err)
	}
	return nil
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
	if cfg.Lanes {
		q.EnableLanes()
	}
	var g gate
	defer g.close()
	var k children
	wait := k.wait
	// On any failure, stop every child and reap it.
	defer func() {
		cancel()
		k.reapRest()
	}()
	startChild := func(ctx context.Context, i int, stdout io.Writer, role string, args ...string) (*procs.Cmd, error) {
		f, err := q.Attach()
		if err != nil {
			return nil, err
		}
		cmd := procs.Command(ctx, role, args...)
		cmd.Index = i
		cmd.SetFile(procs.FDControl, f)
		if err := g.add(cmd); err != nil {
			f.Close()
			return nil, err
		}
		cmd.Stdout = stdout
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s %d: %w", role, i, err)
		}
		k.add(cmd)
		return cmd, nil
	}
	common := []string{"-producers", strconv.Itoa(cfg.Producers), "-messages", strconv.Itoa(cfg.Messages),
		"-size", strconv.Itoa(cfg.Size), "-window", strconv.Itoa(cfg.Window), "-batch", strconv.Itoa(cfg.batch())}
	// Consumers run under their own context, for the watchdog.
	cctx, cancelConsumers := context.WithCancel(ctx)
	defer cancelConsumers()
	outs := make([]*bytes.Buffer, cfg.Consumers)
	var consumers, producers []*procs.Cmd
	for i := range cfg.Consumers {
		outs[i] = new(bytes.Buffer)
		args := common
		if cfg.Shutdown == ShutdownPoisonPill || cfg.Shutdown == ShutdownPoisonPillShort {
			args = append(args[:len(args):len(args)], "-pill")
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
		c, err := startChild(ctx, i, sentOut[i], ProducerRole, append([]string{"-id", strconv.Itoa(i)}, common...)...)
		if err != nil {
			return Result{}, err
		}
		producers = append(producers, c)
	}
	// The hub dispatches on one processor while the values move, as the
	// children do (oneThread): its goroutines wake for a frame every few
	// thousand values, and a second processor only added threads woken
	// with nothing to do (hub CPU per value 18-30 ns against 26-33 with
	// lanes, load 8).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	setup, m, err := g.release(k.cmds, wait, start)
	if err != nil {
		return Result{}, err
	}
	defer m.close()
	exited := m.exited

	var errs []error
	for _, c := range producers {
		if err := wait(c); err != nil {
			errs = append(errs, err)
		}
		exited(c)
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
		if err := putPills(ctx, q, cfg.Size, pills); err != nil {
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
		err := wait(c)
		exited(c)
		if err != nil {
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
	res := Result{Mode: Procs, Setup: setup, Shutdown: cfg.Shutdown, Pills: pills, StopLatency: stopLatency, Terminated: terminated}
	if res.Shutdown == "" {
		res.Shutdown = ShutdownClose
	}
	res.Cost, res.CostErr = m.stop()
	if err := errors.Join(errs...); err != nil {
		return Result{}, fmt.Errorf("queue lab: %w", err)
	}
	first := int64(0)
	for i, b := range sentOut {
		if b.Len() != 16 {
			return Result{}, fmt.Errorf("queue lab: producer %d reported %d bytes, want 16", i, b.Len())
		}
		res.Sent += int(binary.LittleEndian.Uint64(b.Bytes()))
		t := int64(binary.LittleEndian.Uint64(b.Bytes()[8:]))
		if first == 0 || t < first {
			first = t
		}
	}
	cks := make([]*checker, cfg.Consumers)
	last := int64(0)
	for i, out := range outs {
		ck, err := readChecker(cfg, out.Bytes())
		if err != nil {
			return Result{}, fmt.Errorf("queue lab: consumer %d: %w", i, err)
		}
		cks[i] = ck
		last = max(last, ck.last)
	}
	tally(cfg, cks, &res)
	if last > first {
		res.Elapsed = time.Duration(last - first)
	}
	// A relayed value crosses two sockets (producer to hub, hub to
	// consumer), one on a lane, as a 4-byte length and its bytes; frame
	// headers are shared by a batch.
	st := q.Stats()
	res.Cost.Bytes = int64(res.Received-st.LaneValues)*2*int64(4+cfg.Size) + int64(st.LaneValues)*int64(4+cfg.Size)
	return res, nil
}

// putPills puts n poison pills through an endpoint of the owner's own.
func putPills(ctx context.Context, q *ipc.Queue, size, n int) error {
	qc, err := q.Client(ipc.QueueOptions{})
	if err != nil {
		return err
	}
	defer qc.Close()
	v := make([]byte, size)
	for i := range n {
		putValue(v, pillP, uint32(i), 1<<31)
		if err := qc.PutBytes(ctx, v); err != nil {
			return fmt.Errorf("queue lab: put pill %d: %w", i, err)
		}
	}
	return nil
}

// exitTerminated is the status of a consumer stopped by SIGTERM while it
// waited for a message.
const exitTerminated = 3

// childFlags parses the flags every lab child takes into a Config.
func childFlags(role string, args []string, more func(*flag.FlagSet)) (Config, error) {
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	var cfg Config
	fs.IntVar(&cfg.Producers, "producers", 1, "producers")
	fs.IntVar(&cfg.Messages, "messages", 0, "messages in all")
	fs.IntVar(&cfg.Size, "size", 64, "bytes per value")
	fs.IntVar(&cfg.Window, "window", 1, "puts in flight, gets asked ahead")
	fs.IntVar(&cfg.Batch, "batch", 1, "values per PutBatch or GetBatch")
	if more != nil {
		more(fs)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if cfg.Producers < 1 || cfg.Messages < cfg.Producers || cfg.Size < valueHead || cfg.Size > MaxSize || cfg.Batch < 1 || cfg.Batch > maxBatch {
		return cfg, fmt.Errorf("flags %q out of range", args)
	}
	return cfg, nil
}

// oneThread runs a lab child's goroutines on one thread. A child has one
// goroutine of work and the queue endpoint's reader and writer: with a
// processor each, every batch handed between them wakes another thread
// (a futex call and a context switch), while the parent's hub and the other
// children want the same 2 cores. On one processor the hand-over is a
// goroutine switch; the writer then runs when the worker waits, so batches
// grow instead.
func oneThread() { runtime.GOMAXPROCS(1) }

// producerMain puts its share of the values on the queue at
// procs.FDControl, PutBatch at a time, and writes how many it sent and
// when it sent the first (nanotime) on stdout, as two uint64s.
func producerMain(ctx context.Context, args []string) error {
	oneThread()
	var id int
	cfg, err := childFlags(ProducerRole, args, func(fs *flag.FlagSet) { fs.IntVar(&id, "id", 0, "producer number") })
	if err != nil {
		return err
	}
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "queue")
	if err != nil {
		return err
	}
	qc, err := ipc.OpenQueue(f, ipc.QueueOptions{PutWindow: cfg.Window})
	if err != nil {
		return err
	}
	defer qc.Close()
	n, mask := cfg.share(id), sampleMask(cfg.Messages)
	vs := make([][]byte, cfg.Batch)
	buf := make([]byte, cfg.Batch*cfg.Size)
	for i := range vs {
		vs[i] = buf[i*cfg.Size : (i+1)*cfg.Size]
	}
	if err := awaitGo(); err != nil {
		return err
	}
	first := nanotime()
	for s := 0; s < n; s += len(vs) {
		k := min(len(vs), n-s)
		for j, v := range vs[:k] {
			putValue(v, uint32(id), uint32(s+j), mask)
		}
		if _, err := qc.PutBatch(ctx, vs[:k]); err != nil {
			return fmt.Errorf("producer %d: put %d: %w", id, s, err)
		}
	}
	if err := qc.Flush(ctx); err != nil {
		return fmt.Errorf("producer %d: flush: %w", id, err)
	}
	if err := qc.Close(); err != nil {
		return fmt.Errorf("producer %d: close: %w", id, err)
	}
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	binary.LittleEndian.PutUint64(b[8:], uint64(first))
	_, err = os.Stdout.Write(b[:])
	return err
}

// consumerMain gets values, GetBatch at a time, until the queue is closed
// and empty (or, with -pill, until a poison pill), checks each, and writes
// its checker on stdout.
func consumerMain(ctx context.Context, args []string) error {
	oneThread()
	var pill bool
	cfg, err := childFlags(ConsumerRole, args, func(fs *flag.FlagSet) {
		fs.BoolVar(&pill, "pill", false, "stop at a poison pill (the queue is never closed)")
	})
	if err != nil {
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
	qc, err := ipc.OpenQueue(f, ipc.QueueOptions{GetWindow: cfg.Window})
	if err != nil {
		return err
	}
	defer qc.Close()
	ck := newChecker(cfg)
	if pill {
		// One value per Get: a batch could take another consumer's pill,
		// while values fetched ahead and not taken go back at Close.
		cfg.Batch = 1
	}
	vs := make([][]byte, cfg.Batch)
	for i := range vs {
		vs[i] = make([]byte, 0, cfg.Size)
	}
	report := func() error {
		w := bufio.NewWriterSize(os.Stdout, 64<<10)
		if err := ck.writeTo(w); err != nil {
			return err
		}
		return w.Flush()
	}
	if err := awaitGo(); err != nil {
		return err
	}
	for done := false; !done; {
		n, err := qc.GetBatch(ctx, vs)
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				qc.Close()
				if err := report(); err != nil {
					return err
				}
				return procs.ExitCode(exitTerminated)
			}
			return fmt.Errorf("consumer: get: %w", err)
		}
		// One clock read per batch, not per value: the time of the last
		// value taken, for the run's elapsed time.
		ck.last = nanotime()
		for _, v := range vs[:n] {
			if pill && len(v) >= valueHead && binary.LittleEndian.Uint32(v) == pillP {
				done = true
				break
			}
			if err := ck.take(v); err != nil {
				return fmt.Errorf("consumer: %w", err)
			}
		}
	}
	if err := qc.Close(); err != nil {
		return fmt.Errorf("consumer: close: %w", err)
	}
	return report()
}
