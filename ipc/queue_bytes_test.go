package ipc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
)

// Roles that move raw values (PutBytes, GetBytes) of -size bytes: the first
// 4 bytes are the producer's id, the next 8 its sequence number.
const (
	bytesProducerRole = "ipc-test-queue-bytes-producer"
	bytesConsumerRole = "ipc-test-queue-bytes-consumer"
)

func bytesProducerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(bytesProducerRole, flag.ContinueOnError)
	id := fs.Int("id", 0, "producer id")
	n := fs.Int("n", 0, "values to put")
	size := fs.Int("size", 64, "value size, at least 12")
	window := fs.Int("window", 1, "put window")
	batch := fs.Int("batch", 0, "put this many values per PutBatch; 0: PutBytes")
	flushEvery := fs.Int("flush-every", 0, "PutBytes: Flush after every this many values (0: only at the end)")
	dieAfter := fs.Int("die-after", 0, "after a lane write that brings the values written on lanes to this many, write half a frame on the lane and die (SIGKILL) before the hub is told")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dieAfter > 0 {
		testHookLaneWrote = func(conn *net.UnixConn, total int) {
			if total >= *dieAfter {
				// A frame header for 2 values of 16 bytes, and one value.
				torn := []byte{41, 0, 0, 0, qItems, 2, 0, 0, 0, 16, 0, 0, 0}
				torn = append(torn, make([]byte, 16)...)
				conn.Write(torn)
				unix.Kill(os.Getpid(), unix.SIGKILL)
				select {}
			}
		}
	}
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "queue")
	if err != nil {
		return err
	}
	qc, err := OpenQueue(f, QueueOptions{PutWindow: *window})
	if err != nil {
		return err
	}
	defer qc.Close()
	v := make([]byte, max(12, *size))
	binary.LittleEndian.PutUint32(v, uint32(*id))
	if *batch > 0 {
		vs := make([][]byte, *batch)
		for j := range vs {
			vs[j] = bytes.Clone(v)
		}
		for i := 0; i < *n; i += len(vs) {
			k := min(len(vs), *n-i)
			for j := range k {
				binary.LittleEndian.PutUint64(vs[j][4:], uint64(i+j))
			}
			if _, err := qc.PutBatch(ctx, vs[:k]); err != nil {
				return fmt.Errorf("put batch at %d: %w", i, err)
			}
		}
	} else {
		for i := range *n {
			binary.LittleEndian.PutUint64(v[4:], uint64(i))
			if err := qc.PutBytes(ctx, v); err != nil {
				return fmt.Errorf("put %d: %w", i, err)
			}
			if *flushEvery > 0 && (i+1)%*flushEvery == 0 {
				if err := qc.Flush(ctx); err != nil {
					return fmt.Errorf("flush at %d: %w", i, err)
				}
			}
		}
	}
	if err := qc.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := qc.Close(); err != nil {
		return err
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(cpuTime()))
	_, err = os.Stdout.Write(b[:])
	return err
}

// cpuTime returns the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bytesConsumerMain gets values until io.EOF and checks that each
// producer's values come in order, each once. It writes to stdout, with
// -records, an 8-byte record (producer, sequence as uint32s) per value,
// flushed every 1024 values; otherwise, at the end, the count and the
// CLOCK_MONOTONIC times of the first and last value (3 uint64s), then a
// bitmap of the values received from each producer, then the CPU time it
// used (a uint64 of ns).
func bytesConsumerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(bytesConsumerRole, flag.ContinueOnError)
	window := fs.Int("window", 1, "get window")
	producers := fs.Int("producers", 1, "producers")
	n := fs.Int("n", 0, "values per producer")
	records := fs.Bool("records", false, "write a record per value as it comes")
	taskDone := fs.Bool("taskdone", false, "call TaskDone after each value")
	batch := fs.Int("batch", 0, "take up to this many values per GetBatch; 0: GetBytes")
	holdLane := fs.Bool("hold-lane", false, "after each lane frame is taken, wait (up to 100ms) for a TaskDone before reading on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var dones atomic.Int64
	if *holdLane {
		// Widens the window between lane values becoming available to
		// Get and anything else the lane reader does after that: a TaskDone
		// for them must still reach the hub after their count.
		testHookLaneTook = func() {
			seen := dones.Load()
			for deadline := time.Now().Add(100 * time.Millisecond); dones.Load() == seen && time.Now().Before(deadline); {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "queue")
	if err != nil {
		return err
	}
	qc, err := OpenQueue(f, QueueOptions{GetWindow: *window})
	if err != nil {
		return err
	}
	defer qc.Close()
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	bits := make([][]uint64, *producers)
	next := make([]uint64, *producers)
	for p := range bits {
		bits[p] = make([]uint64, (*n+63)/64)
	}
	vs := make([][]byte, max(1, *batch))
	var rec [8]byte
	var count, first, last uint64
	for got, i := 0, 0; ; i++ {
		if i == got {
			if *batch > 0 {
				got, err = qc.GetBatch(ctx, vs)
			} else {
				vs[0], err = qc.GetBytes(ctx, vs[0][:0])
				got = 1
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			i = 0
		}
		v := vs[i]
		if count == 0 {
			first = monoNow()
		}
		count++
		if len(v) < 12 {
			return fmt.Errorf("value of %d bytes", len(v))
		}
		p, s := binary.LittleEndian.Uint32(v), binary.LittleEndian.Uint64(v[4:])
		if int(p) >= *producers || s >= uint64(*n) {
			return fmt.Errorf("value %d/%d was never put", p, s)
		}
		if s < next[p] {
			return fmt.Errorf("producer %d: value %d after %d", p, s, next[p]-1)
		}
		next[p] = s + 1
		bits[p][s/64] |= 1 << (s % 64)
		if *records {
			binary.LittleEndian.PutUint32(rec[:], p)
			binary.LittleEndian.PutUint32(rec[4:], uint32(s))
			w.Write(rec[:])
			if count%1024 == 0 {
				if err := w.Flush(); err != nil {
					return err
				}
			}
		}
		if *taskDone {
			if err := qc.TaskDone(); err != nil {
				return err
			}
			dones.Add(1)
		}
	}
	last = monoNow()
	if !*records {
		var hdr [24]byte
		binary.LittleEndian.PutUint64(hdr[:], count)
		binary.LittleEndian.PutUint64(hdr[8:], first)
		binary.LittleEndian.PutUint64(hdr[16:], last)
		w.Write(hdr[:])
		for _, b := range bits {
			for _, x := range b {
				binary.LittleEndian.PutUint64(rec[:], x)
				w.Write(rec[:])
			}
		}
	}
	if err := qc.Close(); err != nil {
		return err
	}
	if !*records {
		binary.LittleEndian.PutUint64(rec[:], uint64(cpuTime()))
		w.Write(rec[:])
	}
	return w.Flush()
}

// monoNow reads CLOCK_MONOTONIC, which every process on the machine shares.
func monoNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// bytesRun is a queue with producer and consumer children moving raw values.
type bytesRun struct {
	producers, consumers, n int // n values per producer
	size, capacity          int
	putWindow, getWindow    int
	batch                   int  // values per PutBatch and GetBatch; 0: PutBytes and GetBytes
	lanes                   bool // Queue.EnableLanes
}

// bytesResult is what the consumers of a bytesRun reported.
type bytesResult struct {
	count   int
	elapsed time.Duration // from the first value any consumer got to the last
	bits    [][]uint64    // per producer: the values some consumer got
	// CPU time (user and system) of the producers, the consumers and this
	// process, which runs the hub.
	prodCPU, consCPU, hubCPU time.Duration
	stats                    QueueStats // the hub's, once every child ended
}

func (r bytesRun) run(ctx context.Context, tb testing.TB) bytesResult {
	tb.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q, err := NewQueue(r.capacity)
	if err != nil {
		tb.Fatal(err)
	}
	defer q.Shutdown()
	if r.lanes {
		q.EnableLanes()
	}
	var cmds []*procs.Cmd
	defer func() {
		cancel()
		for _, c := range cmds {
			c.Wait()
		}
	}()
	start := func(stdout io.Writer, role string, args ...string) *procs.Cmd {
		f, err := q.Attach()
		if err != nil {
			tb.Fatal(err)
		}
		cmd := procs.Command(ctx, role, args...)
		cmd.ExtraFiles = []*os.File{f}
		cmd.Stdout = stdout
		err = cmd.Start()
		f.Close()
		if err != nil {
			tb.Fatal(err)
		}
		cmds = append(cmds, cmd)
		return cmd
	}
	cpu0 := cpuTime()
	outs := make([]*bytes.Buffer, r.consumers)
	pouts := make([]*bytes.Buffer, r.producers)
	var cons, prods []*procs.Cmd
	for i := range r.consumers {
		outs[i] = new(bytes.Buffer)
		cons = append(cons, start(outs[i], bytesConsumerRole, "-window", strconv.Itoa(r.getWindow), "-batch", strconv.Itoa(r.batch),
			"-producers", strconv.Itoa(r.producers), "-n", strconv.Itoa(r.n)))
	}
	for i := range r.producers {
		pouts[i] = new(bytes.Buffer)
		prods = append(prods, start(pouts[i], bytesProducerRole, "-id", strconv.Itoa(i), "-n", strconv.Itoa(r.n),
			"-size", strconv.Itoa(r.size), "-window", strconv.Itoa(r.putWindow), "-batch", strconv.Itoa(r.batch)))
	}
	var errs []error
	for _, c := range prods {
		errs = append(errs, c.Wait())
	}
	q.Close()
	for _, c := range cons {
		errs = append(errs, c.Wait())
	}
	cmds = nil
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	words := (r.n + 63) / 64
	res := bytesResult{bits: make([][]uint64, r.producers), hubCPU: cpuTime() - cpu0, stats: q.Stats()}
	for i, out := range pouts {
		if out.Len() != 8 {
			tb.Fatalf("producer %d wrote %d bytes, want 8", i, out.Len())
		}
		res.prodCPU += time.Duration(binary.LittleEndian.Uint64(out.Bytes()))
	}
	for p := range res.bits {
		res.bits[p] = make([]uint64, words)
	}
	var first, last uint64
	for ci, out := range outs {
		b := out.Bytes()
		if want := 24 + 8*words*r.producers + 8; len(b) != want {
			tb.Fatalf("consumer %d wrote %d bytes, want %d", ci, len(b), want)
		}
		res.consCPU += time.Duration(binary.LittleEndian.Uint64(b[len(b)-8:]))
		count := binary.LittleEndian.Uint64(b)
		res.count += int(count)
		if count > 0 {
			f, l := binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])
			if first == 0 || f < first {
				first = f
			}
			last = max(last, l)
		}
		b = b[24:]
		for p := range res.bits {
			for i := range res.bits[p] {
				x := binary.LittleEndian.Uint64(b)
				b = b[8:]
				if dup := res.bits[p][i] & x; dup != 0 {
					tb.Fatalf("producer %d: a value in %d..%d delivered to two consumers", p, i*64, i*64+63)
				}
				res.bits[p][i] |= x
			}
		}
	}
	res.elapsed = time.Duration(last - first)
	return res
}

// checkAll fails unless every value of every producer arrived.
func (r bytesRun) checkAll(tb testing.TB, res bytesResult) {
	tb.Helper()
	if res.count != r.producers*r.n {
		tb.Fatalf("consumers got %d values, want %d", res.count, r.producers*r.n)
	}
	for p, b := range res.bits {
		for s := range r.n {
			if b[s/64]&(1<<(s%64)) == 0 {
				tb.Fatalf("value %d/%d never arrived", p, s)
			}
		}
	}
}

// TestQueueTenMillion moves small values from 2 producer to 2 consumer
// processes: each arrives exactly once (no consumer gets one another got,
// none is missing) and each consumer gets each producer's values in order.
// 1,000,000 values; 10,000,000 with IPCPLAY_LONG=1.
func TestQueueTenMillion(t *testing.T) {
	total := 1_000_000
	if os.Getenv("IPCPLAY_LONG") == "1" {
		total = 10_000_000
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	r := bytesRun{producers: 2, consumers: 2, n: total / 2, size: 16,
		capacity: 4096, putWindow: 2048, getWindow: 2048, batch: 100}
	res := r.run(ctx, t)
	r.checkAll(t, res)
	t.Logf("%d values in %v (%.0f/s)", res.count, res.elapsed, float64(res.count)/res.elapsed.Seconds())
}

// watchWriter keeps what a child writes and closes reached once it has
// at least at bytes.
type watchWriter struct {
	mu      sync.Mutex
	b       bytes.Buffer
	at      int
	reached chan struct{}
}

func newWatchWriter(at int) *watchWriter {
	return &watchWriter{at: at, reached: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	before := w.b.Len()
	w.b.Write(p)
	if before < w.at && w.b.Len() >= w.at {
		close(w.reached)
	}
	return len(p), nil
}

func (w *watchWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.b.Bytes())
}

// A prefetching consumer SIGKILLed mid-stream: the hub drops it and counts
// the values it had handed to it (taken or fetched ahead) as stranded.
// Nothing else is lost, nothing arrives twice (not even a value the dead
// consumer reported before it died), the survivor still gets each
// producer's values in order, and Join does not wait for the lost ones.
func TestQueueConsumerKilled(t *testing.T) { consumerKilled(t, false) }

// consumerKilled is TestQueueConsumerKilled, with lanes on or off; with
// lanes, the consumer is killed while it reads one.
func consumerKilled(t *testing.T, lanes bool) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const producers, n = 2, 100_000
	q := newTestQueue(t, 256)
	pargs := []string{"-size", "16", "-window", "128"}
	var cargs []string
	if lanes {
		// Lanes open while the buffer is empty: the producers wait for
		// the hub every 1,000 values, and the consumers take values in
		// batches.
		q.EnableLanes()
		pargs = []string{"-size", "16", "-window", "4096", "-flush-every", "1000"}
		cargs = []string{"-batch", "100"}
	}
	victimOut := newWatchWriter(8 * 4096)
	survivorOut := new(bytes.Buffer)
	consumer := func(out io.Writer) *procs.Cmd {
		return startQueueChild(t, ctx, q, out, bytesConsumerRole, append([]string{"-window", "512", "-records", "-taskdone",
			"-producers", strconv.Itoa(producers), "-n", strconv.Itoa(n)}, cargs...)...)
	}
	victim := consumer(victimOut)
	var prods []*procs.Cmd
	for i := range producers {
		prods = append(prods, startQueueChild(t, ctx, q, nil, bytesProducerRole,
			append([]string{"-id", strconv.Itoa(i), "-n", strconv.Itoa(n)}, pargs...)...))
	}
	select {
	case <-victimOut.reached:
	case <-ctx.Done():
		t.Fatal("the consumer to kill never got going")
	}
	if lanes {
		waitStats(t, ctx, q, func(st QueueStats) bool { return st.LaneValues > 0 && st.OpenLanes > 0 })
	}
	survivor := consumer(survivorOut)
	if err := victim.Process().Kill(); err != nil {
		t.Fatal(err)
	}
	if err := victim.Wait(); err == nil {
		t.Fatal("killed consumer exited 0")
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Stranded > 0 })
	var errs []error
	for _, p := range prods {
		errs = append(errs, p.Wait())
	}
	q.Close()
	errs = append(errs, survivor.Wait())
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Every child has exited; once the hub has read each goodbye and
	// dropped each endpoint, its figures are final.
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 0 })
	seen := make([][]bool, producers)
	for p := range seen {
		seen[p] = make([]bool, n)
	}
	count := func(who string, b []byte) int {
		if len(b)%8 != 0 {
			t.Fatalf("%s wrote %d bytes, not whole records", who, len(b))
		}
		next := make([]uint32, producers)
		k := 0
		for ; len(b) > 0; b = b[8:] {
			p, s := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
			if seen[p][s] {
				t.Fatalf("%s: value %d/%d delivered twice", who, p, s)
			}
			if s < next[p] {
				t.Fatalf("%s: producer %d's value %d after %d", who, p, s, next[p]-1)
			}
			seen[p][s], next[p] = true, s+1
			k++
		}
		return k
	}
	lived := count("survivor", survivorOut.Bytes())
	died := count("killed consumer", victimOut.bytes())
	if lost := producers*n - lived; lost != st.Stranded || died > st.Stranded {
		t.Fatalf("survivor got %d of %d values: %d missing; the hub reports %d stranded; the killed consumer had reported %d",
			lived, producers*n, lost, st.Stranded, died)
	}
	if st.Unfinished != 0 || st.Len != 0 || st.OpenLanes != 0 {
		t.Fatalf("after the run: %+v", st)
	}
	if lanes && st.LaneValues == 0 {
		t.Fatalf("no value went on a lane: %+v", st)
	}
	j := testClient(t, q)
	if err := j.Join(ctx); err != nil {
		t.Fatalf("join after the run: %v", err)
	}
	t.Logf("killed consumer: %d values stranded, %d of them reported before it died; %+v", st.Stranded, died, st)
}
