package ipc

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The get window's top-up rule (waitGet, askAhead): a Get with nothing to
// take and more than half its window asked for does not ask again, except
// after dryAskDelay when it reads a lane. These tests look for values it
// could take that it never gets.

// laneCredited returns what the hub delegated, in all, to the open lane
// read by the consumer that has one (laneSetup makes exactly one).
func laneCredited(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, l := range q.lanes {
		return l.credited
	}
	return -1
}

// waitCredited waits until the hub has delegated more than was delegated
// before (credited) to the open lane: an ask of the consumer was handled
// while the buffer was empty.
func waitCredited(t *testing.T, ctx context.Context, q *Queue, more int) {
	t.Helper()
	for laneCredited(q) < more {
		select {
		case <-ctx.Done():
			t.Fatalf("the consumer's ask never reached the lane (credited %d, want %d): %+v", laneCredited(q), more, q.Stats())
		case <-time.After(time.Millisecond):
		}
	}
}

// getFrom runs c.GetBytes in a goroutine; the channel has its result.
type getResult struct {
	v   []byte
	err error
}

func getFrom(ctx context.Context, c *QueueClient) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		v, err := c.GetBytes(ctx, nil)
		ch <- getResult{v, err}
	}()
	return ch
}

// A lane consumer runs dry while its lane's producer is idle, and its
// re-ask (after dryAskDelay) finds the buffer empty, so the hub gives it
// to the idle lane too. A value another producer puts afterwards must
// still reach the waiting Get.
func TestQueueLaneDryGetGetsLaterValue(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, p, c := laneSetup(t, ctx)
	defer q.Shutdown()
	defer c.Close()
	defer p.Close()
	b := testClient(t, q)
	before := laneCredited(q)
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	got := getFrom(gctx, c)
	waitCredited(t, ctx, q, before+1)
	if err := b.PutBytes(ctx, []byte("from b")); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || string(r.v) != "from b" {
		t.Fatalf("get: %q, %v, want b's value (%+v)", r.v, r.err, q.Stats())
	}
}

// A lane consumer whose whole window is delegated to its lane (the top-up
// of its last take went there), and whose producer then goes idle: a value
// another producer put is in the buffer, and the Get must get it, though
// the window leaves nothing to ask for.
func TestQueueLaneFullWindowOnIdleLane(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, p, c := laneSetup(t, ctx)
	defer q.Shutdown()
	defer c.Close()
	defer p.Close()
	b := testClient(t, q)
	// c is idle: its getting side is ours to read.
	k := c.asked - c.taken - c.getWindow/2
	if k <= 0 {
		t.Fatalf("after the set-up %d asked, %d taken", c.asked, c.taken)
	}
	before := laneCredited(q)
	if _, err := p.PutBatch(ctx, laneVals(k)); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range k {
		if _, err := c.GetBytes(ctx, nil); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	// A give-back of the set-up (qc.revoked) may move where the top-up
	// falls: one value at a time until a take tops the window up.
	for i := 0; c.asked-c.taken != c.getWindow; i++ {
		if i == c.getWindow {
			t.Fatalf("%d asked, %d taken: no take topped the window up", c.asked, c.taken)
		}
		if err := p.PutBytes(ctx, []byte("more")); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetBytes(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitCredited(t, ctx, q, before+c.getWindow/2)
	if err := b.PutBytes(ctx, []byte("from b")); err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	r := <-getFrom(gctx, c)
	if r.err != nil || string(r.v) != "from b" {
		t.Fatalf("get: %q, %v, want b's value (%+v)", r.v, r.err, q.Stats())
	}
}

// laneWrite's count of what went out whole, when a write fails partway
// (here its deadline, with a small socket buffer and nobody reading): the
// reader gets exactly the whole frames of that many values and bytes, on
// the one-frame path and on the path that cuts records into frames.
func TestLaneWritePartialCount(t *testing.T) {
	for _, tc := range []struct {
		name       string
		k, size    int
		sndbuf     int // the kernel doubles it
		wantWholes bool
	}{{"one frame", 1000, 100, 4096, false}, {"frames", 8000, 100, 256 << 10, true}} {
		t.Run(tc.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, tc.sndbuf)
			w, err := laneConn(os.NewFile(uintptr(fds[0]), "w"))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			r, err := laneConn(os.NewFile(uintptr(fds[1]), "r"))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var recs []byte
			for i := range tc.k {
				v := make([]byte, tc.size)
				binary.LittleEndian.PutUint64(v, uint64(i))
				recs = binary.LittleEndian.AppendUint32(recs, uint32(len(v)))
				recs = append(recs, v...)
			}
			if (len(recs) <= laneFrame) != (tc.name == "one frame") {
				t.Fatalf("%d bytes of records: not the %s path", len(recs), tc.name)
			}
			type result struct {
				n, size int
				err     error
			}
			done := make(chan result, 1)
			go func() {
				n, size, err := laneWrite(w, recs, tc.k)
				done <- result{n, size, err}
			}()
			// Once the socket is full the write waits for the reader:
			// a deadline in the past then fails it where it is.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			for !sendFull(t, w) {
				select {
				case <-ctx.Done():
					w.SetWriteDeadline(time.Now())
					t.Fatalf("the socket never filled: %+v", <-done)
				case <-time.After(time.Millisecond):
				}
			}
			w.SetWriteDeadline(time.Now())
			res := <-done
			n, nsize, werr := res.n, res.size, res.err
			if werr == nil {
				t.Fatal("the write did not fail: the socket held it all")
			}
			w.Close()
			r.SetReadDeadline(time.Now().Add(10 * time.Second))
			fr := newFrameReader(r, readBuf)
			got, gotSize := 0, 0
			for {
				op, p, err := fr.next()
				if err != nil {
					break // the end, or a torn last frame
				}
				k, rs, err := parseRecords(p)
				if op != qItems || err != nil {
					t.Fatalf("frame op %d: %v", op, err)
				}
				if !bytes.Equal(rs, recs[gotSize:gotSize+len(rs)]) {
					t.Fatalf("frame after %d values is not the records written", got)
				}
				got, gotSize = got+k, gotSize+len(rs)
			}
			if n != got || nsize != gotSize {
				t.Fatalf("laneWrite says %d values, %d bytes went out whole; the reader got %d, %d (%v)", n, nsize, got, gotSize, werr)
			}
			if tc.wantWholes && (n == 0 || n == tc.k) {
				t.Fatalf("%d of %d values whole: want some frames whole and one torn", n, tc.k)
			}
			t.Logf("%d of %d values whole (%v)", n, tc.k, werr)
		})
	}
}

// sendFull reports whether conn's send buffer is full enough that a
// writer may be waiting for room: at half of SO_SNDBUF (a writer was seen
// waiting at 89% of it, not at 100%). Callers write more than the socket
// can hold, so their writes cannot end before the reader reads.
func sendFull(t *testing.T, conn *net.UnixConn) bool {
	t.Helper()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var queued, size int
	var qerr, serr error
	if err := rc.Control(func(fd uintptr) {
		queued, qerr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		size, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); err != nil {
		return false // closed meanwhile
	}
	if qerr != nil || serr != nil {
		t.Fatalf("socket: outq %v, sndbuf %v", qerr, serr)
	}
	return queued >= size/2
}
