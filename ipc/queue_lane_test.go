package ipc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestQueueLanes moves values from 2 producer to 2 consumer processes with
// lanes on: each arrives exactly once, each consumer gets each producer's
// values in order (the consumers check), and some went on lanes.
// 1,000,000 values; 10,000,000 with IPCPLAY_LONG=1.
func TestQueueLanes(t *testing.T) {
	total := 1_000_000
	if os.Getenv("IPCPLAY_LONG") == "1" {
		total = 10_000_000
	}
	for _, tc := range []struct {
		name   string
		p, c   int
		window int
	}{{"1to1", 1, 1, 4096}, {"2to2", 2, 2, 2048}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
			defer cancel()
			r := bytesRun{producers: tc.p, consumers: tc.c, n: total / tc.p, size: 16,
				capacity: 4096, putWindow: tc.window, getWindow: tc.window, batch: 100, lanes: true}
			res := r.run(ctx, t)
			r.checkAll(t, res)
			st := res.stats
			t.Logf("%d values in %v (%.0f/s); %+v", res.count, res.elapsed, float64(res.count)/res.elapsed.Seconds(), st)
			if st.LaneValues == 0 || st.Lanes == 0 {
				t.Fatalf("no value went on a lane: %+v", st)
			}
			if st.LaneValues+st.Relayed != res.count {
				t.Fatalf("%d on lanes + %d relayed, want %d", st.LaneValues, st.Relayed, res.count)
			}
			if st.OpenLanes != 0 || st.Unfinished != res.count || st.Stranded != 0 {
				t.Fatalf("after the run: %+v, want no open lane, %d unfinished, none stranded", st, res.count)
			}
		})
	}
}

// A consumer SIGKILLed while it reads a lane: it loses only the values
// handed to it (on the lane or relayed), which the hub counts as
// stranded; nothing else is lost or doubled, and Join returns.
func TestQueueLaneConsumerKilled(t *testing.T) { consumerKilled(t, true) }

// A producer killed right after a lane write, before it told the hub, and
// with half a frame written after it: the consumer gets every whole value
// written, in order, none twice and nothing torn, then io.EOF after Close;
// the hub counts the values it was not told of from the consumer's side
// (the consumer's TaskDones would be refused otherwise) and Join returns.
func TestQueueLaneProducerKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const n, dieAfter = 1_000_000, 20_000
	ctx, cancel = context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	q := newTestQueue(t, 4096)
	q.EnableLanes()
	out := new(bytes.Buffer)
	cons := startQueueChild(t, ctx, q, out, bytesConsumerRole, "-window", "4096", "-batch", "100", "-records", "-taskdone",
		"-producers", "1", "-n", strconv.Itoa(n))
	prod := startQueueChild(t, ctx, q, nil, bytesProducerRole, "-id", "0", "-n", strconv.Itoa(n), "-size", "16",
		"-window", "4096", "-batch", "100", "-die-after", strconv.Itoa(dieAfter))
	if err := prod.Wait(); err == nil {
		t.Fatal("the producer that kills itself exited 0")
	} else if ctx.Err() != nil {
		t.Fatalf("producer: %v; hub: %+v; consumer: %v", err, q.Stats(), cons.Wait())
	}
	q.Close()
	if err := cons.Wait(); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 0 })
	b := out.Bytes()
	if len(b)%8 != 0 {
		t.Fatalf("consumer wrote %d bytes, not whole records", len(b))
	}
	got := len(b) / 8
	for i := range got {
		p, s := binary.LittleEndian.Uint32(b[8*i:]), binary.LittleEndian.Uint32(b[8*i+4:])
		if p != 0 || s != uint32(i) {
			t.Fatalf("value %d is %d/%d, want 0/%d", i, p, s, i)
		}
	}
	if got < dieAfter {
		t.Fatalf("consumer got %d values, the producer wrote %d on lanes before it died", got, dieAfter)
	}
	if st.LaneValues+st.Relayed != got || st.Unfinished != 0 || st.OpenLanes != 0 || st.Stranded != 0 {
		t.Fatalf("consumer got %d values; hub: %+v", got, st)
	}
	j := testClient(t, q)
	if err := j.Join(ctx); err != nil {
		t.Fatalf("join after the run: %v", err)
	}
	t.Logf("consumer got %d values, %d on lanes", got, st.LaneValues)
}

// TestQueueLaneTaskDoneAfterCount: a consumer that calls TaskDone for each
// lane value the moment Get returns it, while the lane reader is held just
// after it made the values available, still has every TaskDone accepted:
// the count of lane values read reaches the hub first. (The flag that
// says a count is owed was once set after the values were available, and
// the hub refused such a TaskDone as one too many.)
func TestQueueLaneTaskDoneAfterCount(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const n = 200_000
	q := newTestQueue(t, 4096)
	q.EnableLanes()
	out := new(bytes.Buffer)
	cons := startQueueChild(t, ctx, q, out, bytesConsumerRole, "-window", "4096", "-batch", "100", "-records", "-taskdone",
		"-hold-lane", "-producers", "1", "-n", strconv.Itoa(n))
	prod := startQueueChild(t, ctx, q, nil, bytesProducerRole, "-id", "0", "-n", strconv.Itoa(n), "-size", "16",
		"-window", "4096", "-batch", "100")
	var wg sync.WaitGroup
	defer wg.Wait() // after the deferred cancel has killed what is left
	defer cancel()
	consDone, prodDone := make(chan error, 1), make(chan error, 1)
	wg.Go(func() { consDone <- cons.Wait() })
	wg.Go(func() { prodDone <- prod.Wait() })
	select {
	case err := <-prodDone:
		if err != nil {
			t.Fatalf("producer: %v; hub: %+v", err, q.Stats())
		}
	case err := <-consDone:
		// A consumer refused by the hub leaves the producer waiting for
		// room for ever: fail at once (the cleanup kills the producer).
		t.Fatalf("consumer ended before the producer: %v; hub: %+v", err, q.Stats())
	}
	q.Close()
	if err := <-consDone; err != nil {
		t.Fatalf("consumer: %v; hub: %+v", err, q.Stats())
	}
	if got := out.Len() / 8; got != n {
		t.Fatalf("consumer got %d values, want %d", got, n)
	}
	st := q.Stats()
	if st.LaneValues == 0 {
		t.Fatalf("no value went on a lane: %+v", st)
	}
	j := testClient(t, q)
	if err := j.Join(ctx); err != nil {
		t.Fatalf("join after the run: %v; hub: %+v", err, q.Stats())
	}
	t.Logf("%d values, %d on lanes", n, st.LaneValues)
}

// openFDs counts this process's open files.
func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// laneVals returns n values of 16 bytes numbered from 0.
func laneVals(n int) [][]byte {
	vs := make([][]byte, n)
	for i := range vs {
		vs[i] = make([]byte, 16)
		binary.LittleEndian.PutUint64(vs[i], uint64(i))
	}
	return vs
}

// warmUp moves one value from p to c, so that the hub knows c reads lanes
// before p asks for one.
func warmUp(t *testing.T, ctx context.Context, p, c *QueueClient) {
	t.Helper()
	if err := p.PutBytes(ctx, []byte("warm up")); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetBytes(ctx, nil); err != nil || string(v) != "warm up" {
		t.Fatalf("warm-up value: %q, %v", v, err)
	}
}

// laneSetup returns a queue with lanes on, a producer and a consumer of
// its own that have moved 1,000 values (in order) with a lane open.
func laneSetup(t *testing.T, ctx context.Context) (*Queue, *QueueClient, *QueueClient) {
	t.Helper()
	q, err := NewQueue(4096)
	if err != nil {
		t.Fatal(err)
	}
	q.EnableLanes()
	p, err := q.Client(QueueOptions{PutWindow: 4096})
	if err != nil {
		t.Fatal(err)
	}
	c, err := q.Client(QueueOptions{GetWindow: 4096})
	if err != nil {
		t.Fatal(err)
	}
	warmUp(t, ctx, p, c)
	if _, err := p.PutBatch(ctx, laneVals(1000)); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		v, err := c.GetBytes(ctx, nil)
		if err != nil || binary.LittleEndian.Uint64(v) != uint64(i) {
			t.Fatalf("get %d: %x, %v", i, v, err)
		}
	}
	if st := q.Stats(); st.OpenLanes != 1 || st.LaneValues == 0 {
		t.Fatalf("no lane open: %+v", st)
	}
	return q, p, c
}

// Close while a producer holds credit on a lane and puts nothing: the hub
// ends the lane, the consumer gets io.EOF, a later put fails with
// ErrQueueClosed, and no file is left open.
func TestQueueLaneCloseWhileDelegated(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	fds := openFDs(t)
	q, p, c := laneSetup(t, ctx)
	q.Close()
	if _, err := c.GetBytes(ctx, nil); err != io.EOF {
		t.Fatalf("get after close: %v, want io.EOF", err)
	}
	if err := p.PutBytes(ctx, make([]byte, 16)); err != nil && !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("put after close: %v", err)
	}
	if err := p.Flush(ctx); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("flush after close: %v, want ErrQueueClosed", err)
	}
	if st := q.Stats(); st.OpenLanes != 0 || st.Unfinished != 1001 || st.Len != 0 {
		t.Fatalf("after close: %+v", st)
	}
	p.Close()
	c.Close()
	q.Shutdown()
	if n := openFDs(t); n != fds {
		t.Fatalf("%d files open, %d before", n, fds)
	}
}

// Shutdown with a lane open: both endpoints fail with ErrQueueGone, and no
// file is left open.
func TestQueueLaneShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	fds := openFDs(t)
	q, p, c := laneSetup(t, ctx)
	q.Shutdown()
	if _, err := c.GetBytes(ctx, nil); !errors.Is(err, ErrQueueGone) {
		t.Fatalf("get after shutdown: %v, want ErrQueueGone", err)
	}
	var err error
	for err == nil {
		err = p.PutBytes(ctx, make([]byte, 16))
	}
	if !errors.Is(err, ErrQueueGone) {
		t.Fatalf("put after shutdown: %v, want ErrQueueGone", err)
	}
	p.Close()
	c.Close()
	if n := openFDs(t); n != fds {
		t.Fatalf("%d files open, %d before", n, fds)
	}
}

// A lane consumer that stops taking values holds up only its lane: the
// producer goes back to the hub and another consumer gets values. When the
// stuck one closes, it gives back what it holds (relayed or from the lane),
// and every value arrives exactly once.
func TestQueueLaneStuckConsumerGivesBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const n = 5_000
	fds := openFDs(t)
	q, err := NewQueue(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown()
	q.EnableLanes()
	p, err := q.Client(QueueOptions{PutWindow: 4096})
	if err != nil {
		t.Fatal(err)
	}
	stuck, err := q.Client(QueueOptions{GetWindow: 1024})
	if err != nil {
		t.Fatal(err)
	}
	other, err := q.Client(QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	warmUp(t, ctx, p, stuck)
	seen := make([]bool, n)
	got := 0
	note := func(who string, v []byte) {
		s := binary.LittleEndian.Uint64(v)
		if s >= n || seen[s] {
			t.Fatalf("%s: value %d twice or never put", who, s)
		}
		seen[s] = true
		got++
	}
	perr := make(chan error, 1)
	go func() {
		_, err := p.PutBatch(ctx, laneVals(n))
		if err == nil {
			err = p.Flush(ctx)
		}
		perr <- err
	}()
	for range 10 {
		v, err := stuck.GetBytes(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		note("stuck", v)
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.LaneValues > 0 })
	// The other consumer gets far more than the stuck one holds.
	for got < n/2 { // more than the 1,024 it holds
		v, err := other.GetBytes(ctx, nil)
		if err != nil {
			t.Fatalf("other consumer after %d values: %v; %+v", got, err, q.Stats())
		}
		note("other", v)
	}
	if err := stuck.Close(); err != nil {
		t.Fatal(err)
	}
	for got < n {
		v, err := other.GetBytes(ctx, nil)
		if err != nil {
			t.Fatalf("other consumer after %d values: %v; %+v", got, err, q.Stats())
		}
		note("other", v)
	}
	if err := <-perr; err != nil {
		t.Fatal(err)
	}
	q.Close()
	for {
		v, err := other.GetBytes(ctx, nil)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("other consumer after %d values: %v", got, err)
		}
		note("other", v)
	}
	st := q.Stats()
	if got != n || st.Stranded != 0 || st.LaneValues == 0 {
		t.Fatalf("%d of %d values arrived; %+v", got, n, st)
	}
	p.Close()
	other.Close()
	q.Shutdown()
	if k := openFDs(t); k != fds {
		t.Fatalf("%d files open, %d before", k, fds)
	}
}

// A lane ends while its consumer has not read it yet (held up here), and
// the producer's next values are relayed to the same consumer: they wait
// until the lane is read to its end, so that consumer still gets the
// producer's values in order.
func TestQueueLaneRelayAfterLaneWaits(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q := newTestQueue(t, 4096)
	q.EnableLanes()
	p := testClientOpts(t, q, QueueOptions{PutWindow: 4096})
	c := testClientOpts(t, q, QueueOptions{GetWindow: 300})
	d := testClient(t, q)
	warmUp(t, ctx, p, c)
	hold := make(chan struct{})
	testHookLaneRead = func() { <-hold }
	defer func() { testHookLaneRead = nil }()
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	defer release()
	const n = 3000
	perr := make(chan error, 1)
	go func() {
		_, err := p.PutBatch(ctx, laneVals(n))
		if err == nil {
			err = p.Flush(ctx)
		}
		perr <- err
	}()
	// c takes what it can; d asks, so that the starved lane ends and the
	// producer relays the rest.
	type got struct {
		seq []uint64
		err error
	}
	cgot, dgot := make(chan got, 1), make(chan got, 1)
	take := func(qc *QueueClient, out chan<- got) {
		var g got
		for {
			v, err := qc.GetBytes(ctx, nil)
			if err != nil {
				if err != io.EOF {
					g.err = err
				}
				break
			}
			g.seq = append(g.seq, binary.LittleEndian.Uint64(v))
		}
		out <- g
	}
	go take(c, cgot)
	go take(d, dgot)
	// The lane was used and ended, and values were relayed after it,
	// while c had not read the lane.
	waitStats(t, ctx, q, func(st QueueStats) bool {
		return st.Lanes >= 1 && st.OpenLanes == 0 && st.Relayed > 255+300
	})
	release()
	if err := <-perr; err != nil {
		t.Fatal(err)
	}
	q.Close()
	cg, dg := <-cgot, <-dgot
	if cg.err != nil || dg.err != nil {
		t.Fatalf("c: %v, d: %v", cg.err, dg.err)
	}
	for i := 1; i < len(cg.seq); i++ {
		if cg.seq[i] <= cg.seq[i-1] {
			t.Fatalf("c got value %d after %d", cg.seq[i], cg.seq[i-1])
		}
	}
	if len(cg.seq)+len(dg.seq) != n {
		t.Fatalf("c got %d values and d %d, want %d in all", len(cg.seq), len(dg.seq), n)
	}
	t.Logf("c got %d values, d %d; %+v", len(cg.seq), len(dg.seq), q.Stats())
}

// Close while the lane's producer has written values it has not reported
// and holds more (its writer is held up here, after a lane write): the
// consumer's later asks wait in the hub, and it gets io.EOF only after
// the producer closed the lane, so every value written comes first.
func TestQueueLaneNoEOFWhileLaneOpen(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	wrote, hold := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	var held bool
	testHookLaneWrote = func(*net.UnixConn, int) {
		if armed.CompareAndSwap(true, false) {
			close(wrote)
			<-hold
		}
	}
	defer func() { testHookLaneWrote = nil }() // after the clients closed
	q, p, c := laneSetup(t, ctx)
	defer q.Shutdown()
	defer c.Close()
	defer p.Close()
	armed.Store(true)
	release := func() {
		if !held {
			held = true
			close(hold)
		}
	}
	defer release()
	const n = 500
	vals := laneVals(1000 + 2*n)[1000:]
	perr := make(chan error, 1)
	go func() {
		_, err := p.PutBatch(ctx, vals[:n])
		perr <- err
	}()
	select {
	case <-wrote:
	case <-ctx.Done():
		t.Fatal("no lane write")
	}
	if err := <-perr; err != nil {
		t.Fatal(err)
	}
	// These wait in the producer's lane buffer: its writer is held up.
	if _, err := p.PutBatch(ctx, vals[n:]); err != nil {
		t.Fatal(err)
	}
	q.Close()
	type got struct {
		v   uint64
		err error
	}
	gets := make(chan got, 2*n+1)
	go func() {
		for {
			v, err := c.GetBytes(ctx, nil)
			if err != nil {
				gets <- got{err: err}
				return
			}
			gets <- got{v: binary.LittleEndian.Uint64(v)}
		}
	}()
	next := uint64(1000)
	for next < 1000+n {
		g := <-gets
		if g.err != nil || g.v != next {
			t.Fatalf("get %d: %d, %v", next, g.v, g.err)
		}
		next++
	}
	// The consumer asks again and the hub keeps the asks: the queue is
	// closed and empty, but the lane is open.
	for {
		st := q.Stats()
		if st.PendingGets > 0 {
			break
		}
		select {
		case g := <-gets:
			t.Fatalf("value %d got while the lane was held: %d, %v (%+v)", next, g.v, g.err, q.Stats())
		case <-ctx.Done():
			t.Fatalf("the consumer's asks never waited in the hub: %+v", st)
		case <-time.After(time.Millisecond):
		}
	}
	release()
	for ; next < 1000+2*n; next++ {
		g := <-gets
		if g.err != nil || g.v != next {
			t.Fatalf("get %d: %d, %v", next, g.v, g.err)
		}
	}
	if g := <-gets; g.err != io.EOF {
		t.Fatalf("after the values: %d, %v, want io.EOF", g.v, g.err)
	}
}

// A lane consumer that stops reading (held up here, as if stopped) while
// its producer writes more than the lane's socket holds: the producer's
// Close still returns (it gives up on the lane), and once the consumer
// reads again it gets every value exactly once, in order, then io.EOF.
func TestQueueLaneCloseStuckConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	hold, stuck := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	testHookLaneRead = func() {
		if armed.CompareAndSwap(true, false) {
			close(stuck)
			<-hold
		}
	}
	defer func() { testHookLaneRead = nil }() // after the clients closed
	var held bool
	release := func() {
		if !held {
			held = true
			close(hold)
		}
	}
	defer release()
	q, p, c := laneSetup(t, ctx)
	defer q.Shutdown()
	defer c.Close()
	defer p.Close()
	// A lane socket's 1 MiB send buffer (streamBuf) would take most of
	// the puts: a small one makes the first lane write wait for room,
	// whatever the kernel allows.
	p.wmu.Lock()
	if rc, err := p.lane.conn.SyscallConn(); err != nil {
		t.Fatal(err)
	} else {
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10) })
	}
	p.wmu.Unlock()
	armed.Store(true)
	const n = 4000
	vals := make([][]byte, n)
	for i := range vals {
		vals[i] = make([]byte, 1024)
		binary.LittleEndian.PutUint64(vals[i], uint64(1000+i))
	}
	// The puts fill the lane's socket and then wait for room (the lane
	// write never ends); Close makes them fail.
	go p.PutBatch(ctx, vals)
	select {
	case <-stuck:
	case <-ctx.Done():
		t.Fatal("the consumer read nothing from the lane")
	}
	// The lane's socket is full, so the producer's lane write waits for
	// room (the socket's buffer must be smaller than the lane's credit).
	for !laneSendFull(t, p) {
		select {
		case <-ctx.Done():
			release()
			t.Fatalf("the lane's socket never filled: %+v", q.Stats())
		case <-time.After(time.Millisecond):
		}
	}
	cerr := make(chan error, 1)
	go func() { cerr <- p.Close() }()
	select {
	case err := <-cerr:
		t.Logf("close: %v", err)
	case <-ctx.Done():
		release()
		t.Fatalf("the producer's Close did not return while its lane's consumer was stuck: %+v", q.Stats())
	}
	release()
	q.Close()
	next := uint64(1000)
	for {
		v, err := c.GetBytes(ctx, nil)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("get %d: %v", next, err)
		}
		if got := binary.LittleEndian.Uint64(v); got != next {
			t.Fatalf("got %d, want %d", got, next)
		}
		next++
	}
	st := q.Stats()
	t.Logf("consumer got %d values after the producer closed; %+v", next-1000, st)
	if st.Unfinished != 1+int(next) || st.OpenLanes != 0 || st.Len != 0 { // 1: the warm-up value
		t.Fatalf("got up to %d: %+v", next, st)
	}
}

// laneSendFull reports whether the socket of the lane p writes is full
// (see sendFull).
func laneSendFull(t *testing.T, p *QueueClient) bool {
	t.Helper()
	p.wmu.Lock()
	conn := p.lane.conn
	p.wmu.Unlock()
	return conn != nil && sendFull(t, conn)
}

// Several lane sockets can go to an endpoint with one write (lanes opened
// and ended while its hub socket was full): the reader keeps them all, in
// order.
func TestQueueLaneManyFilesOneWrite(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	a, b := conn(fds[0]), conn(fds[1])
	defer a.Close()
	defer b.Close()
	const k = 8
	var files []int
	for range k {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		files = append(files, int(r.Fd()))
	}
	if _, _, err := a.WriteMsgUnix([]byte("x"), unix.UnixRights(files...), nil); err != nil {
		t.Fatal(err)
	}
	r := newFdReader(b)
	defer r.closeAll()
	if _, err := r.Read(make([]byte, 16)); err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(r.files) != k {
		t.Fatalf("%d files received, %d sent", len(r.files), k)
	}
}

// A lane producer that goes idle holding credit (all of its consumer's
// asks): a value another producer puts still reaches that consumer.
func TestQueueLaneIdleProducerHoldsNoValue(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, p, c := laneSetup(t, ctx)
	defer q.Shutdown()
	defer c.Close()
	defer p.Close()
	otherProducerReaches(t, ctx, q, c)
}

// The same with the consumer's window full when the lane's producer goes
// idle: every ask the consumer has out is delegated to the lane, so a Get
// has nothing more to ask for; a value another producer puts must still
// reach it.
func TestQueueLaneIdleProducerHoldsFullWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, err := NewQueue(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown()
	q.EnableLanes()
	p, err := q.Client(QueueOptions{PutWindow: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const win = 64
	c, err := q.Client(QueueOptions{GetWindow: win})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	warmUp(t, ctx, p, c)
	vs := laneVals(1000 + win)
	if _, err := p.PutBatch(ctx, vs[:1000]); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		v, err := c.GetBytes(ctx, nil)
		if err != nil || binary.LittleEndian.Uint64(v) != uint64(i) {
			t.Fatalf("get %d: %x, %v", i, v, err)
		}
	}
	// Values that arrive before the Gets that take them: the last take
	// asks for the window's second half and no Get waits after it, so
	// the whole window is asked for and delegated to the lane.
	k := c.asked - c.taken - win/2
	if _, err := p.PutBatch(ctx, vs[1000:1000+k]); err != nil {
		t.Fatal(err)
	}
	for {
		c.mu.Lock()
		in := c.inN
		c.mu.Unlock()
		if in == k {
			break
		}
		select {
		case <-c.avail:
		case <-ctx.Done():
			t.Fatalf("%d of %d values arrived", in, k)
		}
	}
	for i := range k {
		v, err := c.GetBytes(ctx, nil)
		if err != nil || binary.LittleEndian.Uint64(v) != uint64(1000+i) {
			t.Fatalf("get %d: %x, %v", 1000+i, v, err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); c.asked-c.taken != win || st.OpenLanes != 1 || st.PendingGets != 0 {
		t.Fatalf("want a lane holding the whole window (%d asked, %d taken): %+v", c.asked, c.taken, st)
	}
	otherProducerReaches(t, ctx, q, c)
}

// otherProducerReaches checks that a value another producer puts reaches
// c within 10 seconds.
func otherProducerReaches(t *testing.T, ctx context.Context, q *Queue, c *QueueClient) {
	t.Helper()
	b, err := q.Client(QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.PutBytes(ctx, []byte("from b")); err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	v, err := c.GetBytes(gctx, nil)
	if err != nil || string(v) != "from b" {
		t.Fatalf("get: %q, %v, want b's value (%+v)", v, err, q.Stats())
	}
}

// A lane's socket goes in the same write as the message that opens it:
// the endpoint's writer may send what is queued at any moment, and an
// endpoint that read the message without its socket broke. Here the hub
// writes to the consumer right after the message is queued, and the
// consumer reads that write before the hub goes on.
func TestQueueLaneOpenWithItsSocket(t *testing.T) {
	q, err := NewQueue(16)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown()
	q.EnableLanes()
	fds := openFDs(t)
	c := newRawEnd(t, q)
	defer c.close()
	var o outBuf
	o.addEmpty(qLaneOK)
	o.addCount(qGrant, 64, false)
	c.send(&o)
	c.sync()
	read := make(chan struct{}) // c is the hook's until closed
	testHookLaneOpen = func(hc *hubConn) {
		if hc.clanes > 0 { // the consumer
			hc.flushOut()
			c.read()
			close(read)
		}
	}
	defer func() { testHookLaneOpen = nil }()
	p := newRawEnd(t, q)
	defer p.close()
	o.addEmpty(qLaneAsk)
	p.send(&o)
	p.sync()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatalf("no lane opened: %+v", q.Stats())
	}
	for _, f := range c.sync() {
		if f.op == qLaneItems {
			testHookLaneOpen = nil
			c.close()
			p.close()
			q.Shutdown()
			if n := openFDs(t); n != fds {
				t.Fatalf("%d files open, %d before", n, fds)
			}
			return
		}
	}
	t.Fatalf("no lane opened: %+v", q.Stats())
}

// A lane producer that waits for room while its consumer asks for nothing
// (it takes values only after the producer's Flush): the buffer has room
// for them all, so the Flush returns, as it does without lanes.
func TestQueueLaneFlushWithRoom(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, err := NewQueue(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown()
	q.EnableLanes()
	p, err := q.Client(QueueOptions{PutWindow: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := q.Client(QueueOptions{GetWindow: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	warmUp(t, ctx, p, c)
	if _, err := p.PutBatch(ctx, laneVals(1000)); err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	defer fcancel()
	if err := p.Flush(fctx); err != nil {
		t.Fatalf("flush: %v (%+v)", err, q.Stats())
	}
	for i := range 1000 {
		v, err := c.GetBytes(ctx, nil)
		if err != nil || binary.LittleEndian.Uint64(v) != uint64(i) {
			t.Fatalf("get %d: %x, %v", i, v, err)
		}
	}
}
