package shm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

func newLocalRing(t testing.TB, cfg RingConfig) *Ring {
	t.Helper()
	size, err := RingSize(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := MakeRing(Local(size), 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRingHeaderChecked(t *testing.T) {
	cfg := RingConfig{Mode: MPMC, Slots: 16, MaxMessage: 40, MaxProducers: 2, MaxConsumers: 3}
	size, err := RingSize(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		off    int // byte to change in the header
		val    byte
		avail  int // memory given to OpenRing, 0 means all
		what   string
		reject bool
	}{
		{name: "intact", reject: false},
		{name: "magic", off: 0, val: 'x', what: "magic", reject: true},
		{name: "version", off: 4, val: 9, what: "version", reject: true},
		{name: "mode", off: 8, val: 7, what: "mode", reject: true},
		{name: "slots", off: 12, val: 17, what: "slots", reject: true},
		{name: "slot-size", off: 16, val: 41, what: "slot size", reject: true},
		{name: "producers", off: 20, val: 0, what: "tables", reject: true},
		{name: "size", off: 32, val: 1, what: "size", reject: true},
		{name: "short-memory", avail: size - 8, what: "size", reject: true},
	} {
		t.Run("field="+tc.name, func(t *testing.T) {
			mem := Local(size)
			if _, err := MakeRing(mem, 0, cfg); err != nil {
				t.Fatal(err)
			}
			if tc.what != "" && tc.avail == 0 {
				mem[tc.off] = tc.val
			}
			if tc.avail != 0 {
				mem = mem[:tc.avail]
			}
			r, err := OpenRing(mem, 0)
			if !tc.reject {
				if err != nil {
					t.Fatalf("OpenRing = %v, want nil", err)
				}
				if h := r.Header(); h.Slots != 16 || h.Mode != MPMC || r.MaxMessage() != 40 {
					t.Errorf("header = %+v", h)
				}
				return
			}
			var re *RingError
			if !errors.As(err, &re) || !errors.Is(err, ErrRingCorrupt) {
				t.Fatalf("OpenRing = %v, want a *RingError", err)
			}
			if re.What != tc.what {
				t.Errorf("RingError.What = %q, want %q (%v)", re.What, tc.what, err)
			}
		})
	}
	if _, err := OpenRing(Local(4096), 0); !errors.Is(err, ErrRingCorrupt) {
		t.Errorf("OpenRing of zeros = %v, want ErrRingCorrupt", err)
	}
	mem := Local(size)
	if _, err := MakeRing(mem, 0, cfg); err != nil {
		t.Fatal(err)
	}
	if h, err := DecodeRingHeader(mem, -1); !errors.Is(err, ErrRingCorrupt) {
		t.Errorf("DecodeRingHeader with -1 bytes available = %+v, %v; want ErrRingCorrupt", h, err)
	}
}

func TestDecodeSlotAcrossWrap(t *testing.T) {
	for _, p := range []uint64{0, 5, math.MaxUint32 - 1, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64, math.MaxUint64 - 3} {
		for _, tc := range []struct {
			w    uint64
			want slotState
			n    uint32
		}{
			{slotWord(uint32(p), 9), slotFree, 0},
			{slotWord(uint32(p+1), 17), slotFull, 17},
			{slotWord(uint32(p+1), tombstone), slotTombstone, 0},
			{slotWord(uint32(p-15), 3), slotBehind, 0},
			{slotWord(uint32(p+16), 0), slotAhead, 0},
		} {
			st, n, err := decodeSlot(tc.w, p, 32)
			if err != nil || st != tc.want || n != tc.n {
				t.Errorf("decodeSlot(%#x, %d) = %v, %d, %v; want %v, %d", tc.w, p, st, n, err, tc.want, tc.n)
			}
		}
		if _, _, err := decodeSlot(slotWord(uint32(p+1), 33), p, 32); !errors.Is(err, ErrRingCorrupt) {
			t.Errorf("decodeSlot of length 33 in a 32-byte ring = %v, want ErrRingCorrupt", err)
		}
	}
	if !covers(uint64(math.MaxUint32-1)|3<<32, 1<<32) || covers(uint64(math.MaxUint32-1)|3<<32, 1<<32+1) || covers(uint64(math.MaxUint32-1)|3<<32, math.MaxUint32-2) {
		t.Error("covers: an intent across 2^32 covers the wrong positions")
	}
}

// runLocal moves n stamped messages per producer through r between
// goroutines and checks that each arrives exactly once, in each producer's
// order.
func runLocal(t *testing.T, r *Ring, producers, consumers int, n uint64, rng *rand.Rand) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := make(map[[2]uint64]int)
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel()
	}
	var ps []*RingProducer
	for range producers {
		p, err := r.Producer(RingOptions{Batch: 1 + rng.IntN(40), Spin: rng.IntN(50)})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	var cs []*RingConsumer
	for range consumers {
		c, err := r.Consumer(RingOptions{Spin: rng.IntN(50)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for id, p := range ps {
		seed := rng.Uint64()
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, 1))
			defer p.Close()
			var seq uint64
			for seq < n {
				k := 1 + rng.IntN(70)
				batch := make([][]byte, 0, k)
				for i := 0; i < k && seq+uint64(i) < n; i++ {
					m := make([]byte, StampSize+rng.IntN(r.MaxMessage()-StampSize+1))
					Stamp(m, uint32(id), seq+uint64(i))
					batch = append(batch, m)
				}
				var err error
				switch rng.IntN(3) {
				case 0:
					var sent int
					sent, err = p.SendBatch(ctx, batch)
					seq += uint64(sent)
				case 1:
					err = p.Send(ctx, batch[0])
					if err == nil {
						seq++
					}
				default:
					err = p.Write(ctx, batch[0])
					if err == nil {
						seq++
					}
				}
				if err != nil {
					fail(fmt.Errorf("producer %d at %d: %w", id, seq, err))
					return
				}
			}
		})
	}
	for ci, c := range cs {
		max := 1 + rng.IntN(100)
		wg.Go(func() {
			defer c.Close()
			last := make(map[uint32]uint64)
			for {
				_, err := c.RecvBatch(ctx, max, func(m []byte) {
					id, seq, err := CheckStamp(m)
					if err != nil {
						fail(err)
						return
					}
					if l, ok := last[id]; ok && seq <= l {
						fail(fmt.Errorf("consumer %d: producer %d's message %d after %d", ci, id, seq, l))
					}
					last[id] = seq
					mu.Lock()
					seen[[2]uint64{uint64(id), seq}]++
					mu.Unlock()
				})
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					fail(fmt.Errorf("consumer %d: %w", ci, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	if want := producers * int(n); len(seen) != want {
		t.Errorf("%d distinct messages arrived, want %d", len(seen), want)
	}
	for k, v := range seen {
		if v != 1 {
			t.Errorf("message %v arrived %d times", k, v)
		}
	}
	if st := r.Stats(); st.LostByProducers+st.LostByConsumers != 0 || st.Producers != 0 || st.Consumers != 0 {
		t.Errorf("Stats = %+v, want nothing lost and nobody attached", st)
	}
}

// TestRingWrapAround starts the index counters near their maximum, so that
// positions cross 2^64 and the slot sequences cross 2^32 many times.
func TestRingWrapAround(t *testing.T) {
	starts := []uint64{0, math.MaxUint64 - 37, math.MaxUint32 - 37, 1<<63 - 5, math.MaxUint64}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	for i := range 3 {
		starts = append(starts, rng.Uint64()|uint64(i)<<62)
	}
	for _, mode := range []RingMode{SPSC, MPMC} {
		for _, start := range starts {
			t.Run(fmt.Sprintf("mode=%v/start=%#x", mode, start), func(t *testing.T) {
				slots := 1 << (1 + rng.IntN(6))
				cfg := RingConfig{Mode: mode, Slots: slots, MaxMessage: StampSize + rng.IntN(100), Start: start}
				r := newLocalRing(t, cfg)
				producers, consumers := 1, 1
				if mode == MPMC {
					producers, consumers = 1+rng.IntN(3), 1+rng.IntN(3)
				}
				t.Logf("slots=%d max=%d producers=%d consumers=%d", slots, cfg.MaxMessage, producers, consumers)
				n := uint64(3000)
				runLocal(t, r, producers, consumers, n, rng)
				want := start + uint64(producers)*n
				if h, tl := r.head.Load(), r.tail.Load(); h != want || tl != want {
					t.Errorf("head, tail = %#x, %#x; want both %#x", h, tl, want)
				}
			})
		}
	}
}

func TestRingEndsWhenOneSideLeaves(t *testing.T) {
	for _, mode := range []RingMode{SPSC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			r := newLocalRing(t, RingConfig{Mode: mode, Slots: 4, MaxMessage: 8})
			p, err := r.Producer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.Consumer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if mode == SPSC {
				if _, err := r.Producer(RingOptions{}); !errors.Is(err, ErrRingBusy) {
					t.Errorf("second SPSC producer: %v, want ErrRingBusy", err)
				}
			}
			if err := p.Send(ctx, []byte("a")); err != nil {
				t.Fatal(err)
			}
			// The producer leaves: the consumer reads what is left, then EOF.
			done := make(chan error, 1)
			go func() {
				b, err := c.Recv(ctx, nil)
				if err == nil && string(b) != "a" {
					err = fmt.Errorf("got %q, want a", b)
				}
				if err == nil {
					_, err = c.Recv(ctx, nil)
				}
				done <- err
			}()
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, io.EOF) {
				t.Fatalf("Recv after the producer closed = %v, want io.EOF", err)
			}
			// A producer that fills the ring while the last consumer
			// leaves gets ErrNoConsumers instead of waiting.
			p, err = r.Producer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				var err error
				for err == nil {
					err = p.Send(ctx, []byte("b"))
				}
				done <- err
			}()
			for r.Len() < 4 && ctx.Err() == nil {
				runtime.Gosched()
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, ErrNoConsumers) {
				t.Fatalf("Send with no consumer left = %v, want ErrNoConsumers", err)
			}
			p.Close()
		})
	}
}

func TestRingRejectsLargeMessage(t *testing.T) {
	r := newLocalRing(t, RingConfig{Slots: 4, MaxMessage: 8})
	p, err := r.Producer(RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Send(t.Context(), make([]byte, 9)); err == nil {
		t.Error("Send of 9 bytes into an 8-byte ring succeeded")
	}
	if r.Len() != 0 {
		t.Errorf("Len = %d after a rejected send", r.Len())
	}
}
