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
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ipcplay/procs"
)

const (
	queueProducerRole = "ipc-test-queue-producer"
	queueConsumerRole = "ipc-test-queue-consumer"
)

// registerQueueRoles is called by TestMain.
func registerQueueRoles() {
	procs.Register(queueProducerRole, queueProducerMain)
	procs.Register(queueConsumerRole, queueConsumerMain)
	procs.Register(bytesProducerRole, bytesProducerMain)
	procs.Register(bytesConsumerRole, bytesConsumerMain)
	procs.Register(RawFramesRole, RawFramesMain)
}

type qItem struct {
	//lint:ignore U1000 msgpack reads its tag
	_msgpack struct{} `msgpack:",as_array"`
	P        uint32
	S        uint32
}

// queueProducerMain puts -n items {P: -id, S: 0..n-1} on the queue at
// procs.FDControl. With -report it prints its count of accepted puts on
// stdout after each one. A put refused because the queue closed ends it
// with status 0.
func queueProducerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(queueProducerRole, flag.ContinueOnError)
	id := fs.Int("id", 0, "producer id")
	n := fs.Int("n", 0, "items to put")
	window := fs.Int("window", 1, "put window")
	report := fs.Bool("report", false, "print the count after every put")
	if err := fs.Parse(args); err != nil {
		return err
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
	for i := range *n {
		if err := qc.Put(ctx, &qItem{P: uint32(*id), S: uint32(i)}); err != nil {
			if errors.Is(err, ErrQueueClosed) {
				return nil
			}
			return fmt.Errorf("put %d: %w", i, err)
		}
		if *report {
			fmt.Println(i + 1)
		}
	}
	return qc.Flush(ctx)
}

// queueConsumerMain gets items until io.EOF, checks that each producer's
// items come in order, and writes every item it got to stdout as two
// little-endian uint32s.
func queueConsumerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(queueConsumerRole, flag.ContinueOnError)
	window := fs.Int("window", 1, "get window")
	taskDone := fs.Bool("taskdone", true, "call TaskDone after each item")
	if err := fs.Parse(args); err != nil {
		return err
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
	w := bufio.NewWriter(os.Stdout)
	next := map[uint32]uint32{}
	var it qItem
	var b [8]byte
	for {
		if err := qc.Get(ctx, &it); err != nil {
			if err == io.EOF {
				break
			}
			return fmt.Errorf("get: %w", err)
		}
		if it.S < next[it.P] {
			return fmt.Errorf("producer %d: item %d after %d", it.P, it.S, next[it.P]-1)
		}
		next[it.P] = it.S + 1
		binary.LittleEndian.PutUint32(b[:4], it.P)
		binary.LittleEndian.PutUint32(b[4:], it.S)
		w.Write(b[:])
		if !*taskDone {
			continue
		}
		if err := qc.TaskDone(); err != nil {
			return err
		}
	}
	return w.Flush()
}

func newTestQueue(t *testing.T, capacity int) *Queue {
	t.Helper()
	q, err := NewQueue(capacity)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Shutdown() })
	return q
}

func testClient(t *testing.T, q *Queue) *QueueClient {
	t.Helper()
	return testClientOpts(t, q, QueueOptions{})
}

func testClientOpts(t *testing.T, q *Queue, opt QueueOptions) *QueueClient {
	t.Helper()
	qc, err := q.Client(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qc.Close() })
	return qc
}

// startQueueChild starts role on a new endpoint of q.
func startQueueChild(t *testing.T, ctx context.Context, q *Queue, stdout io.Writer, role string, args ...string) *procs.Cmd {
	t.Helper()
	f, err := q.Attach()
	if err != nil {
		t.Fatal(err)
	}
	cmd := procs.Command(ctx, role, args...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout = stdout
	err = cmd.Start()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestQueueLocal(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	q := newTestQueue(t, 4)
	p, c := testClient(t, q), testClient(t, q)
	for i := range 4 {
		if err := p.Put(ctx, &qItem{S: uint32(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.Len != 4 || st.Unfinished != 4 {
		t.Fatalf("after 4 puts: %+v", st)
	}
	var it qItem
	if err := c.Get(ctx, &it); err != nil || it.S != 0 {
		t.Fatalf("get: %+v, %v", it, err)
	}
	q.Close()
	if err := p.Put(ctx, &qItem{S: 99}); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("put after Close: %v, want ErrQueueClosed", err)
	}
	for i := 1; i < 4; i++ {
		if err := c.Get(ctx, &it); err != nil || it.S != uint32(i) {
			t.Fatalf("drain %d: %+v, %v", i, it, err)
		}
	}
	for range 2 {
		if err := c.Get(ctx, &it); err != io.EOF {
			t.Fatalf("get after drain: %v, want io.EOF", err)
		}
	}
}

func TestQueueCloseWakesGetters(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	q := newTestQueue(t, 1)
	c := testClient(t, q)
	done := make(chan error, 1)
	go func() {
		var it qItem
		done <- c.Get(ctx, &it)
	}()
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.PendingGets == 1 })
	q.Close()
	if err := <-done; err != io.EOF {
		t.Fatalf("blocked get after Close: %v, want io.EOF", err)
	}
}

func TestQueueShutdownFailsClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	q, err := NewQueue(1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := q.Client(QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		var it qItem
		done <- c.Get(ctx, &it)
	}()
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.PendingGets == 1 })
	q.Shutdown()
	if err := <-done; !errors.Is(err, ErrQueueGone) {
		t.Fatalf("get across Shutdown: %v, want ErrQueueGone", err)
	}
	if _, err := q.Attach(); !errors.Is(err, ErrQueueGone) {
		t.Fatalf("Attach after Shutdown: %v, want ErrQueueGone", err)
	}
}

func waitStats(t *testing.T, ctx context.Context, q *Queue, ok func(QueueStats) bool) QueueStats {
	t.Helper()
	for {
		st := q.Stats()
		if ok(st) {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("hub never reached the state wanted; last %+v", st)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func TestQueueDeadlines(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	q := newTestQueue(t, 2)
	c := testClient(t, q)
	const wait = 100 * time.Millisecond

	dctx, dcancel := context.WithTimeout(ctx, wait)
	dl, _ := dctx.Deadline()
	var it qItem
	err := c.Get(dctx, &it)
	returned := time.Now()
	dcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get on empty queue: %v, want DeadlineExceeded", err)
	}
	// Not before the deadline itself (a clock started after the context
	// was made reads short by the machine's load); no upper bound: a hang
	// meets ctx's guard.
	if returned.Before(dl) {
		t.Fatalf("get gave up %v before its deadline", dl.Sub(returned))
	}
	if st := q.Stats(); st.PendingGets != 0 {
		t.Fatalf("cancelled get still waiting in the hub: %+v", st)
	}

	for i := range 2 {
		if err := c.Put(ctx, &qItem{S: uint32(i)}); err != nil {
			t.Fatal(err)
		}
	}
	dctx, dcancel = context.WithTimeout(ctx, wait)
	dl, _ = dctx.Deadline()
	err = c.Put(dctx, &qItem{S: 2})
	returned = time.Now()
	dcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put on full queue: %v, want DeadlineExceeded", err)
	}
	if returned.Before(dl) {
		t.Fatalf("put gave up %v before its deadline", dl.Sub(returned))
	}
	if st := q.Stats(); st.Len != 2 || st.PendingPuts != 0 || st.Unfinished != 2 {
		t.Fatalf("a timed-out put changed the queue: %+v", st)
	}
	// The timed-out put was not added: the queue holds 0 and 1 only.
	q.Close()
	for i := range 3 {
		err := c.Get(ctx, &it)
		if i < 2 && (err != nil || it.S != uint32(i)) {
			t.Fatalf("get %d: %+v, %v", i, it, err)
		}
		if i == 2 && err != io.EOF {
			t.Fatalf("get 2: %+v, %v, want io.EOF", it, err)
		}
	}
}

func TestQueueJoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	q := newTestQueue(t, 8)
	p, c := testClient(t, q), testClient(t, q)
	if err := p.Join(ctx); err != nil {
		t.Fatalf("join on a fresh queue: %v", err)
	}
	for i := range 3 {
		if err := p.Put(ctx, &qItem{S: uint32(i)}); err != nil {
			t.Fatal(err)
		}
	}
	joined := make(chan error, 1)
	go func() { joined <- p.Join(ctx) }()
	var it qItem
	for range 3 {
		if err := c.Get(ctx, &it); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-joined:
			t.Fatalf("Join returned (%v) with tasks unfinished", err)
		case <-time.After(20 * time.Millisecond):
		}
		if err := c.TaskDone(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-joined; err != nil {
		t.Fatalf("join: %v", err)
	}
	// One TaskDone too many: reported by the next TaskDone, once the hub
	// has answered (Join is a round trip behind it on the same socket).
	if err := c.TaskDone(); err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.TaskDone(); err == nil {
		t.Fatal("extra TaskDone not reported")
	}
	// Join honours its context.
	if err := p.Put(ctx, &qItem{}); err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer dcancel()
	if err := p.Join(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("join with a task open: %v, want DeadlineExceeded", err)
	}
}

// runProducersConsumers runs producers and consumers as child processes
// and checks that every item arrived exactly once, in order per producer
// (each consumer checks its own order).
func runProducersConsumers(t *testing.T, producers, consumers, n, capacity, window int, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	q := newTestQueue(t, capacity)
	var cmds []*procs.Cmd
	outs := make([]*bytes.Buffer, consumers)
	for i := range consumers {
		outs[i] = new(bytes.Buffer)
		cmds = append(cmds, startQueueChild(t, ctx, q, outs[i], queueConsumerRole, "-window", strconv.Itoa(window)))
	}
	var pcmds []*procs.Cmd
	for i := range producers {
		pcmds = append(pcmds, startQueueChild(t, ctx, q, nil, queueProducerRole,
			"-id", strconv.Itoa(i), "-n", strconv.Itoa(n), "-window", strconv.Itoa(window)))
	}
	var errs []error
	for _, c := range pcmds {
		if err := c.Wait(); err != nil {
			errs = append(errs, err)
		}
	}
	q.Close() // every producer is done: let the consumers drain and stop
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := make([][]bool, producers)
	for i := range seen {
		seen[i] = make([]bool, n)
	}
	total := 0
	for ci, out := range outs {
		b := out.Bytes()
		if len(b)%8 != 0 {
			t.Fatalf("consumer %d wrote %d bytes, not whole items", ci, len(b))
		}
		for ; len(b) > 0; b = b[8:] {
			p, s := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
			if int(p) >= producers || int(s) >= n {
				t.Fatalf("consumer %d got item %d/%d, which was never sent", ci, p, s)
			}
			if seen[p][s] {
				t.Fatalf("item %d/%d delivered twice", p, s)
			}
			seen[p][s] = true
			total++
		}
	}
	if total != producers*n {
		for p := range seen {
			for s, ok := range seen[p] {
				if !ok {
					t.Fatalf("%d of %d items arrived; lost e.g. %d/%d", total, producers*n, p, s)
				}
			}
		}
	}
	if st := q.Stats(); st.Unfinished != 0 || st.Len != 0 {
		t.Fatalf("after the run: %+v", st)
	}
}

func TestQueueProcesses(t *testing.T) {
	runProducersConsumers(t, 2, 2, 50_000, 64, 1, 90*time.Second)
}

func TestQueueProcessesWindow(t *testing.T) {
	runProducersConsumers(t, 2, 2, 50_000, 64, 16, 90*time.Second)
}

func TestQueueProcessesBatch(t *testing.T) {
	runProducersConsumers(t, 2, 2, 50_000, 64, 4096, 90*time.Second)
}

func TestQueueMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000 messages: skipped with -short")
	}
	runProducersConsumers(t, 4, 2, 250_000, 256, 64, 170*time.Second)
}

// lineCounter keeps the last number a child printed on a line.
type lineCounter struct {
	mu   sync.Mutex
	part []byte
	last int
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		if v, err := strconv.Atoi(string(l.part[:i])); err == nil {
			l.last = v
		}
		l.part = l.part[i+1:]
	}
	return len(p), nil
}

func (l *lineCounter) get() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// reach waits until the count is want, then checks that it stays there
// for quiet: the producer is blocked, not slow.
func (l *lineCounter) reach(t *testing.T, ctx context.Context, want int, quiet time.Duration) {
	t.Helper()
	for l.get() < want {
		select {
		case <-ctx.Done():
			t.Fatalf("producer stopped after %d puts, want %d", l.get(), want)
		case <-time.After(5 * time.Millisecond):
		}
	}
	time.Sleep(quiet)
	if got := l.get(); got != want {
		t.Fatalf("producer went on to %d puts, want it blocked at %d", got, want)
	}
}

func TestQueueGetWindowGivesBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	q := newTestQueue(t, 16)
	p := testClient(t, q)
	for i := range 10 {
		if err := p.Put(ctx, &qItem{S: uint32(i)}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := q.Client(QueueOptions{GetWindow: 8})
	if err != nil {
		t.Fatal(err)
	}
	var it qItem
	for i := range 2 {
		if err := c.Get(ctx, &it); err != nil || it.S != uint32(i) {
			t.Fatalf("get %d: %+v, %v", i, it, err)
		}
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Len < 8 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The values it fetched ahead and did not take are back, in order.
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 1 })
	if st.Len != 8 || st.PendingGets != 0 {
		t.Fatalf("after the prefetching consumer closed: %+v", st)
	}
	q.Close()
	for i := 2; i < 10; i++ {
		if err := p.Get(ctx, &it); err != nil || it.S != uint32(i) {
			t.Fatalf("get %d after give-back: %+v, %v", i, it, err)
		}
	}
	if err := p.Get(ctx, &it); err != io.EOF {
		t.Fatalf("get after drain: %v, want io.EOF", err)
	}
}

func TestQueueBackpressure(t *testing.T) {
	for _, window := range []int{1, 4, 64} {
		t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			const capacity = 10
			q := newTestQueue(t, capacity)
			var count lineCounter
			cmd := startQueueChild(t, ctx, q, &count, queueProducerRole,
				"-n", "1000000", "-report", "-window", strconv.Itoa(window))
			// No consumer: the producer must stop once the buffer is full
			// and its window is used up (a windowed Put returns when sent).
			waitStats(t, ctx, q, func(st QueueStats) bool { return st.Len == capacity && st.PendingPuts == window })
			want := capacity // a synchronous Put returns once the hub took it
			if window > 1 {
				want += window // windowed Puts return once sent
			}
			count.reach(t, ctx, want, 200*time.Millisecond)
			if st := q.Stats(); st.Len != capacity || st.PendingPuts != window {
				t.Fatalf("hub while stalled: %+v", st)
			}
			// Taking 5 lets exactly 5 more in.
			c := testClient(t, q)
			var it qItem
			for i := range 5 {
				if err := c.Get(ctx, &it); err != nil || it.S != uint32(i) {
					t.Fatalf("get %d: %+v, %v", i, it, err)
				}
			}
			count.reach(t, ctx, want+5, 200*time.Millisecond)
			q.Close() // refuses the blocked put: the producer exits
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A producer killed mid-stream: the hub drops its endpoint and its waiting
// put, every value it had acknowledged is still delivered, in order, and
// nothing hangs.
func TestQueueProducerKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const capacity = 8
	q := newTestQueue(t, capacity)
	var count lineCounter
	cmd := startQueueChild(t, ctx, q, &count, queueProducerRole, "-n", "1000000", "-report")
	c := testClient(t, q)
	var it qItem
	for i := range 100 {
		if err := c.Get(ctx, &it); err != nil || it.S != uint32(i) {
			t.Fatalf("get %d: %+v, %v", i, it, err)
		}
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Len == capacity && st.PendingPuts == 1 })
	if err := cmd.Process().Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("killed producer exited 0")
	}
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 1 })
	if st.PendingPuts != 0 || st.Len != capacity {
		t.Fatalf("after the producer died: %+v", st)
	}
	q.Close()
	n := 100
	for ; ; n++ {
		err := c.Get(ctx, &it)
		if err == io.EOF {
			break
		}
		if err != nil || it.S != uint32(n) {
			t.Fatalf("get %d: %+v, %v", n, it, err)
		}
	}
	if printed := count.get(); n < printed || n > printed+1 {
		t.Fatalf("consumer got %d values; the producer had reported %d acknowledged", n, printed)
	}
}

// Gets and Puts that time out all the time, racing with values on their
// way: a timed-out call never takes or adds a value, so every value still
// arrives exactly once.
func TestQueueCancelRaces(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const n, consumers = 2000, 4
	q := newTestQueue(t, 4)
	p := testClient(t, q)
	got := make([][]uint32, consumers)
	var getTimeouts atomic.Int64
	var wg sync.WaitGroup
	for c := range consumers {
		qc := testClient(t, q)
		wg.Go(func() {
			var it qItem
			for i := 0; ; i++ {
				dctx, dcancel := context.WithTimeout(ctx, time.Duration(1+i%3)*100*time.Microsecond)
				err := qc.Get(dctx, &it)
				dcancel()
				switch {
				case err == nil:
					got[c] = append(got[c], it.S)
					if len(got[c])%8 == 0 {
						time.Sleep(time.Millisecond) // let the queue fill, so puts time out too
					}
				case err == io.EOF:
					return
				case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
					getTimeouts.Add(1)
				default:
					t.Errorf("consumer %d: %v", c, err)
					return
				}
			}
		})
	}
	timeouts := 0
	for i, try := 0, 0; i < n; try++ {
		dctx, dcancel := context.WithTimeout(ctx, time.Duration(1+try%3)*100*time.Microsecond)
		err := p.Put(dctx, &qItem{S: uint32(i)})
		dcancel()
		switch {
		case err == nil:
			i++
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			timeouts++ // not added: put it again
		default:
			t.Fatalf("put %d: %v", i, err)
		}
	}
	q.Close()
	wg.Wait()
	seen := make([]int, n)
	for c := range got {
		for j, s := range got[c] {
			if j > 0 && s < got[c][j-1] {
				t.Errorf("consumer %d got %d after %d", c, s, got[c][j-1])
			}
			seen[s]++
		}
	}
	for s, k := range seen {
		if k != 1 {
			t.Fatalf("value %d arrived %d times", s, k)
		}
	}
	t.Logf("%d puts timed out and were put again; %d gets timed out", timeouts, getTimeouts.Load())
}

// An endpoint that asks for values and never reads the replies (a stopped
// process, say) must hold up only itself: other endpoints go on.
func TestQueueStuckEndpointHoldsUpOnlyItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const stuckGets, more, size = 1000, 100, 4096
	q := newTestQueue(t, 16)
	f, err := q.Attach()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ask outBuf
	ask.addCount(qGrant, stuckGets, false)
	if _, err := f.Write(ask.take(nil)); err != nil {
		t.Fatal(err)
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.PendingGets == stuckGets })
	// The first stuckGets values go to the endpoint that never reads:
	// about 4 MiB of replies, far more than its socket holds.
	p, c := testClientOpts(t, q, QueueOptions{PutWindow: 32}), testClient(t, q)
	payload := make([]byte, size)
	done := make(chan error, 1)
	go func() {
		for i := range stuckGets + more {
			if err := p.Put(ctx, &struct {
				//lint:ignore U1000 msgpack reads its tag
				_msgpack struct{} `msgpack:",as_array"`
				S        int
				B        []byte
			}{S: i, B: payload}); err != nil {
				done <- fmt.Errorf("put %d: %w", i, err)
				return
			}
		}
		done <- p.Flush(ctx)
	}()
	var it struct {
		//lint:ignore U1000 msgpack reads its tag
		_msgpack struct{} `msgpack:",as_array"`
		S        int
		B        []byte
	}
	for i := range more {
		if err := c.Get(ctx, &it); err != nil || it.S != stuckGets+i {
			t.Fatalf("get %d past the stuck endpoint: S=%d, %v", i, it.S, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
