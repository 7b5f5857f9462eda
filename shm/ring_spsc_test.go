package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestRingSPSCModel drives an SPSC producer and consumer from one
// goroutine through random runs of Write, Send, Flush, SendBatch and
// TryRecvBatch, with the index counters started near 2^64 and 2^32 so that
// positions and slot sequences wrap, and checks each step against a model
// of the protocol: the consumer gets exactly the messages published (by
// Flush, SendBatch or every Batch writes) and not yet received, up to the
// tail it last read, in order; tail, head, taken and Len follow.
func TestRingSPSCModel(t *testing.T) {
	starts := []uint64{0, math.MaxUint64 - 70, math.MaxUint64, math.MaxUint32 - 70, 1<<63 - 3}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 29))
	for i := range 4 {
		starts = append(starts, rng.Uint64()|uint64(i)<<62)
	}
	for _, start := range starts {
		for round := range 4 {
			t.Run(fmt.Sprintf("start=%#x/%d", start, round), func(t *testing.T) {
				spscModel(t, rng, start)
			})
		}
	}
}

func spscModel(t *testing.T, rng *rand.Rand, start uint64) {
	slots := uint64(1) << (1 + rng.IntN(6))
	batch := 1 + rng.IntN(70)
	r := newLocalRing(t, RingConfig{Slots: int(slots), MaxMessage: 16, Start: start})
	p, err := r.Producer(RingOptions{Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := r.Consumer(RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	// Counts from start: written, published, received, and the tail the
	// consumer last read; and the messages Send published by their slot
	// words (nothing pending before them), which a consumer at their
	// position reads alone, without reading tail.
	var w, pub, got, seen uint64
	byWord := map[uint64]bool{}
	msg := func(i uint64) []byte {
		b := make([]byte, 8+i%9)
		binary.LittleEndian.PutUint64(b, i)
		return b
	}
	for step := range 3000 {
		switch op := rng.IntN(5); {
		case op == 0 && w-got < slots:
			if err := p.Write(ctx, msg(w)); err != nil {
				t.Fatalf("step %d: Write: %v", step, err)
			}
			delete(byWord, w)
			w++
			if w-pub >= uint64(batch) {
				pub = w
			}
		case op == 4 && w-got < slots:
			if err := p.Send(ctx, msg(w)); err != nil {
				t.Fatalf("step %d: Send: %v", step, err)
			}
			byWord[w] = w == pub
			w++
			pub = w
		case op == 1:
			p.Flush()
			pub = w
		case op == 2:
			k := rng.IntN(int(slots-(w-got)) + 1)
			ms := make([][]byte, k)
			for i := range ms {
				ms[i] = msg(w + uint64(i))
			}
			if n, err := p.SendBatch(ctx, ms); err != nil || n != k {
				t.Fatalf("step %d: SendBatch(%d) = %d, %v", step, k, n, err)
			}
			for i := range uint64(k) {
				delete(byWord, w+i)
			}
			w += uint64(k)
			pub = w // SendBatch ends with a Flush, of what Write left too
		case op == 3:
			max := 1 + rng.IntN(2*int(slots))
			if seen == got {
				seen = pub
				if byWord[got] {
					seen = got + 1
				}
			}
			want := min(seen-got, uint64(max))
			var n uint64
			_, err := c.TryRecvBatch(max, func(m []byte) {
				if v := binary.LittleEndian.Uint64(m); v != got+n || len(m) != 8+int(v%9) {
					t.Fatalf("step %d: message %d (%d bytes), want %d", step, v, len(m), got+n)
				}
				n++
			})
			if err != nil || n != want {
				t.Fatalf("step %d: TryRecvBatch(%d) got %d, %v; want %d (published %d, received %d)", step, max, n, err, want, pub, got)
			}
			got += n
			if tk := r.taken.Load(); tk != start+got {
				t.Fatalf("step %d: taken = %#x, want %#x", step, tk, start+got)
			}
		}
		if tl, h := r.tail.Load(), r.head.Load(); tl != start+pub || h != start+got || r.Len() != int(pub-got) {
			t.Fatalf("step %d: tail, head, Len = %#x, %#x, %d; want %#x, %#x, %d", step, tl, h, r.Len(), start+pub, start+got, pub-got)
		}
	}
}

// TestRingSPSCCorruptTail: with a message written at head, a tail behind
// head by more than one (one is a Send's store of tail not landed yet), or
// ahead of it by more than the ring holds, is an error matching
// ErrRingCorrupt and no slot is read.
func TestRingSPSCCorruptTail(t *testing.T) {
	for _, start := range []uint64{0, math.MaxUint64 - 2} {
		for _, d := range []uint64{math.MaxUint64 - 1, 9, 1 << 40} {
			t.Run(fmt.Sprintf("start=%#x/tail=head%+d", start, int64(d)), func(t *testing.T) {
				r := newLocalRing(t, RingConfig{Slots: 8, MaxMessage: 16, Start: start})
				c, err := r.Consumer(RingOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				p, err := r.Producer(RingOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				if err := p.Write(context.Background(), []byte("unpublished")); err != nil {
					t.Fatal(err)
				}
				r.tail.Store(start + d)
				n, err := c.TryRecvBatch(100, func(m []byte) { t.Errorf("got a %d-byte message", len(m)) })
				if !errors.Is(err, ErrRingCorrupt) || n != 0 {
					t.Errorf("TryRecvBatch = %d, %v; want 0, ErrRingCorrupt", n, err)
				}
				if h := r.head.Load(); h != start {
					t.Errorf("head moved to %#x", h)
				}
			})
		}
	}
}

// TestRingSPSCSendPublishesByWord: a Send with nothing pending is
// published by its slot word, so that a consumer sees it before the
// producer's store of tail lands (tail is rolled back here to stand for
// that moment) and reads it once; a producer that takes over from one
// that died in that moment continues after it, so that it is neither lost
// nor overwritten; a message Write left pending is never delivered by its
// word.
func TestRingSPSCSendPublishesByWord(t *testing.T) {
	for _, start := range []uint64{0, math.MaxUint64, math.MaxUint32} {
		t.Run(fmt.Sprintf("start=%#x", start), func(t *testing.T) {
			ctx := context.Background()
			r := newLocalRing(t, RingConfig{Slots: 4, MaxMessage: 16, Start: start})
			c, err := r.Consumer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got []string
			recv := func(want string) {
				t.Helper()
				if _, err := c.TryRecvBatch(10, func(m []byte) { got = append(got, string(m)) }); err != nil {
					t.Fatalf("TryRecvBatch: %v", err)
				}
				if fmt.Sprint(got) != "["+want+"]" {
					t.Fatalf("got %q, want %s", got, want)
				}
			}
			p, err := r.Producer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Send(ctx, []byte("m0")); err != nil {
				t.Fatal(err)
			}
			r.tail.Store(start) // m0's store of tail has not landed
			recv("m0")
			r.tail.Store(start + 1) // now it has
			recv("m0")
			// m1 is published by its word, and its producer dies before
			// its store of tail.
			if err := p.Send(ctx, []byte("m1")); err != nil {
				t.Fatal(err)
			}
			r.tail.Store(start + 1)
			p.s.detach(p.e) // as Reap drops a dead producer
			p2, err := r.Producer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer p2.Close()
			if tl := r.tail.Load(); tl != start+2 {
				t.Errorf("the new producer stored tail %#x, want %#x (after m1)", tl, start+2)
			}
			if err := p2.Write(ctx, []byte("pending")); err != nil {
				t.Fatal(err)
			}
			recv("m0 m1")
			recv("m0 m1") // at head, the pending message's word
			if err := p2.Send(ctx, []byte("m2")); err != nil {
				t.Fatal(err)
			}
			recv("m0 m1 pending m2")
		})
	}
}

// TestRingSPSCUnpublishedCountedLost: messages a producer wrote and never
// published before it died (Write leaves up to Batch-1 pending) are never
// delivered, and the producer that takes over counts them lost, once,
// whoever takes over after it.
func TestRingSPSCUnpublishedCountedLost(t *testing.T) {
	for _, start := range []uint64{0, math.MaxUint64 - 1, math.MaxUint32} {
		t.Run(fmt.Sprintf("start=%#x", start), func(t *testing.T) {
			ctx := context.Background()
			r := newLocalRing(t, RingConfig{Slots: 8, MaxMessage: 16, Start: start})
			c, err := r.Consumer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got []string
			recv := func(want string) {
				t.Helper()
				if _, err := c.TryRecvBatch(10, func(m []byte) { got = append(got, string(m)) }); err != nil {
					t.Fatalf("TryRecvBatch: %v", err)
				}
				if fmt.Sprint(got) != "["+want+"]" {
					t.Fatalf("got %q, want %s", got, want)
				}
			}
			p, err := r.Producer(RingOptions{Batch: 32})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Send(ctx, []byte("m0")); err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{"w1", "w2", "w3"} {
				if err := p.Write(ctx, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			p.s.detach(p.e) // as Reap drops a dead producer
			recv("m0")
			for range 2 {
				// A second producer that takes over counts nothing more.
				p2, err := r.Producer(RingOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if st := r.Stats(); st.LostByProducers != 3 {
					t.Errorf("LostByProducers = %d, want 3 (the messages written and never published)", st.LostByProducers)
				}
				p2.s.detach(p2.e)
			}
			p3, err := r.Producer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer p3.Close()
			if err := p3.Send(ctx, []byte("m1")); err != nil {
				t.Fatal(err)
			}
			recv("m0 m1")
			recv("m0 m1")
		})
	}
}
