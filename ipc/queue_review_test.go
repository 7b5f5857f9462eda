package ipc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// A consumer closed while one of its Gets waits must not lose a value the
// hub hands it meanwhile: the value is returned by that Get, given back
// to the queue, or (only if the consumer could not give it back) counted
// as stranded. Before the fix the hub could hand a value to an endpoint
// that had already said goodbye: gone, not counted, and Join hung.
func TestQueueCloseDuringGetLosesNothing(t *testing.T) {
	for _, window := range []int{1, 8} {
		t.Run(fmt.Sprintf("getwindow=%d", window), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			q := newTestQueue(t, 4)
			p, drain := testClient(t, q), testClient(t, q)
			rounds := 300
			if window > 1 {
				rounds = 100
			}
			for i := range rounds {
				c, err := q.Client(QueueOptions{GetWindow: window})
				if err != nil {
					t.Fatal(err)
				}
				got := make(chan error, 1)
				go func() {
					_, err := c.GetBytes(ctx, nil)
					got <- err
				}()
				waitStats(t, ctx, q, func(st QueueStats) bool { return st.PendingGets > 0 })
				before := q.Stats().Stranded
				closed := make(chan error, 1)
				go func() { closed <- c.Close() }()
				if err := p.PutBytes(ctx, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				if err := <-closed; err != nil {
					t.Fatalf("round %d: close: %v", i, err)
				}
				gerr := <-got
				st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 2 })
				where := 0
				if gerr == nil {
					where++
				} else if !errors.Is(gerr, ErrQueueGone) {
					t.Fatalf("round %d: get: %v", i, gerr)
				}
				if st.Len == 1 {
					where++
					if _, err := drain.GetBytes(ctx, nil); err != nil {
						t.Fatal(err)
					}
				}
				if st.Stranded > before {
					where++
				}
				if where != 1 {
					t.Fatalf("round %d: value found %d times (get error %v, stats %+v, stranded before %d)", i, where, gerr, st, before)
				}
			}
		})
	}
}

// A consumer's Close gives values back to the front of the queue; another
// consumer may then get them after later values of the same producer. The
// package doc says so (the order guarantee has this exception); this test
// pins the behaviour so that a change to it is seen.
func TestQueueGiveBackReordersForOthers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	q := newTestQueue(t, 32)
	p := testClient(t, q)
	for i := range 20 {
		if err := p.PutBytes(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	c1 := testClientOpts(t, q, QueueOptions{GetWindow: 10})
	if v, err := c1.GetBytes(ctx, nil); err != nil || v[0] != 0 {
		t.Fatalf("c1 get: %v, %v", v, err)
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Len == 10 })
	c2 := testClient(t, q)
	if v, err := c2.GetBytes(ctx, nil); err != nil || v[0] != 10 {
		t.Fatalf("c2 first get: %v, %v", v, err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 2 })
	if v, err := c2.GetBytes(ctx, nil); err != nil || v[0] != 1 {
		t.Fatalf("c2 second get: %v, %v; want 1, given back by c1", v, err)
	}
}

// rawEndpoint attaches a connection that speaks the wire format directly,
// as a faulty or hostile peer would.
func rawEndpoint(t *testing.T, q *Queue) net.Conn {
	t.Helper()
	f, err := q.Attach()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// A peer may give back only values it was handed: a requeue of values it
// never got would put values in the queue past its capacity, unannounced
// to Join. The hub drops such a peer.
func TestQueueRequeueOfValuesNeverHandedIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	q := newTestQueue(t, 4)
	nc := rawEndpoint(t, q)
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 1 })
	var o outBuf
	for range 100 {
		o.addRecord(qRequeue, []byte("forged"))
	}
	if _, err := nc.Write(o.take(nil)); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 0 || st.Len > 0 })
	if st.Len > q.Capacity() || st.Clients != 0 {
		t.Fatalf("after a forged give-back: %+v; want the peer dropped and nothing queued", st)
	}
}

// A producer may have at most MaxQueueWindow puts unanswered (the largest
// PutWindow): one that sends more without reading the answers is dropped,
// instead of the hub holding everything it sends.
func TestQueueUnboundedPutsAreRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	q := newTestQueue(t, 1)
	nc := rawEndpoint(t, q)
	var o outBuf
	for range 4096 {
		o.addRecord(qPuts, nil)
	}
	frame := o.take(nil)
	sent := 0
	for sent <= MaxQueueWindow+4096 {
		if _, err := nc.Write(frame); err != nil {
			break // dropped
		}
		sent += 4096
	}
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 0 })
	if st.PendingPuts != 0 {
		t.Fatalf("dropped producer's puts still held: %+v", st)
	}
}

// The frame reader must refuse a length it cannot hold before it
// allocates: every length up to 2^32-1 is either a frame or an error.
func TestQueueFrameLengthBounds(t *testing.T) {
	for _, n := range []uint32{0, maxBody + 1, 1<<31 - 1, 1 << 31, 1<<32 - 1} {
		var b [frameHdr + 1]byte
		binary.LittleEndian.PutUint32(b[:], n)
		fr := newFrameReader(readerOf(b[:]), 16)
		if _, _, err := fr.next(); err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("length %d: %v, want a malformed-frame error", n, err)
		}
		if cap(fr.buf) > 16 {
			t.Fatalf("length %d: reader grew its buffer to %d bytes", n, cap(fr.buf))
		}
	}
}

type sliceReader struct{ b []byte }

func readerOf(b []byte) *sliceReader { return &sliceReader{b} }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// floodUntilBlocked writes frame to nc over and over, up to total bytes,
// until the hub stops reading (the write deadline passes) or drops it.
func floodUntilBlocked(t *testing.T, nc net.Conn, frame []byte, total int) {
	t.Helper()
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 0, 64<<10)
	for len(buf)+len(frame) <= cap(buf) {
		buf = append(buf, frame...)
	}
	for sent := 0; sent < total; sent += len(buf) {
		if _, err := nc.Write(buf); err != nil {
			return
		}
	}
}

// backlog returns the most bytes of replies queued for any endpoint.
func backlog(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	most := 0
	for hc := range q.conns {
		hc.outMu.Lock()
		most = max(most, hc.out.len())
		hc.outMu.Unlock()
	}
	return most
}

// A peer that sends requests and reads no replies must not make the hub
// queue replies without bound: once its writer is stuck, the hub stops
// reading that peer.
func TestQueueUnreadRepliesAreBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q := newTestQueue(t, 16)
	nc := rawEndpoint(t, q)
	var o outBuf
	o.addCount(qGrant, 1000, false)
	if _, err := nc.Write(o.take(nil)); err != nil {
		t.Fatal(err)
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.PendingGets == 1000 })
	// 4 MiB of values for it: more than its socket holds, so its writer
	// goroutine is stuck.
	p := testClientOpts(t, q, QueueOptions{PutWindow: 64})
	v := make([]byte, 4096)
	for range 1000 {
		if err := p.PutBytes(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b0 := backlog(q)    // the values, which it asked for
	o.addEmpty(qRevoke) // each is answered with a 9-byte qRevoked
	floodUntilBlocked(t, nc, o.take(nil), 32<<20)
	if b := backlog(q); b > b0+2*maxBacklog {
		t.Fatalf("%d bytes of replies queued for a peer that reads none (%d before it sent requests); want at most %d more", b, b0, 2*maxBacklog)
	}
}

// Joins waiting are bounded per endpoint.
func TestQueueJoinFloodIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q := newTestQueue(t, 4)
	p := testClient(t, q)
	if err := p.PutBytes(ctx, []byte{1}); err != nil { // Join waits for it
		t.Fatal(err)
	}
	nc := rawEndpoint(t, q)
	var o outBuf
	o.addSeq(qJoin, 1)
	floodUntilBlocked(t, nc, o.take(nil), 2*maxJoins*9)
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 1 })
	q.mu.Lock()
	n := len(q.joins)
	q.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d joins held after the flooding peer was dropped (%+v)", n, st)
	}
}

// A consumer that gives back more values than one requeue frame holds
// sends several; they must land in the order the values were put.
func TestQueueGiveBackManyKeepsOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const total = 5000
	q := newTestQueue(t, total)
	p := testClientOpts(t, q, QueueOptions{PutWindow: 256})
	v := make([]byte, 4)
	for i := range total {
		binary.LittleEndian.PutUint32(v, uint32(i))
		if err := p.PutBytes(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c1 := testClientOpts(t, q, QueueOptions{GetWindow: total})
	if v, err := c1.GetBytes(ctx, nil); err != nil || binary.LittleEndian.Uint32(v) != 0 {
		t.Fatalf("first get: %v, %v", v, err)
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Len == 0 })
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 1 })
	q.Close()
	c2 := testClientOpts(t, q, QueueOptions{GetWindow: 64})
	for i := 1; i < total; i++ {
		v, err := c2.GetBytes(ctx, nil)
		if err != nil || binary.LittleEndian.Uint32(v) != uint32(i) {
			t.Fatalf("get %d after give-back: %v, %v", i, v, err)
		}
	}
}
