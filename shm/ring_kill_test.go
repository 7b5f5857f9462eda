package shm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestRingProducersKilledTogether kills MPMC producer processes at random
// moments while others run, on a small ring that is full most of the time,
// so that producers race for the same slots when one dies: the ring never
// stays stuck, no message arrives torn, twice or out of order, and what
// the dead claimed is counted lost. IPCPLAY_LONG=1 makes 300 kills.
func TestRingProducersKilledTogether(t *testing.T) {
	kills := 20
	if raceBuild {
		kills = 5
	}
	if longTests() {
		kills = 300
	}
	const running = 3
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cfg := RingConfig{Mode: MPMC, Slots: 64, MaxMessage: 64, MaxProducers: running + 1}
	reg, r, _ := newRingRegion(t, cfg, 0)
	// The test holds a producer while producers come and go, so that the
	// consumer sees EOF only at the end.
	keeper, err := r.Producer(RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Consumer(RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	next := make(map[uint32]uint64)
	var total uint64
	cerr := make(chan error, 1)
	consumed := make(chan struct{})
	defer func() { cancel(); <-consumed }()
	go func() {
		defer close(consumed)
		defer c.Close()
		for {
			_, err := c.RecvBatch(ctx, 8, func(m []byte) {
				id, seq, err := CheckStamp(m)
				mu.Lock()
				defer mu.Unlock()
				if err == nil && seq != next[id] {
					err = fmt.Errorf("producer %d: message %d, want %d", id, seq, next[id])
				}
				if err != nil {
					if ctx.Err() == nil {
						cerr <- err
						cancel()
					}
					return
				}
				next[id] = seq + 1
				total++
			})
			if err != nil {
				cerr <- err
				return
			}
		}
	}()
	delivered := func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return total
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	id := 0
	start := func() *ringChild {
		id++
		return startRing(t, ctx, reg, RoleRingProducer, nil, "-id", strconv.Itoa(id), "-msg", strconv.Itoa(StampSize+rng.IntN(41)),
			"-batch", strconv.Itoa(1+rng.IntN(64)), "-spin", strconv.Itoa(rng.IntN(300)))
	}
	var prods []*ringChild
	for range running {
		prods = append(prods, start())
	}
	for i := range kills {
		// Let the stream move on, then kill one producer at a random
		// moment of its work, and start another.
		goal := delivered() + 1 + uint64(rng.IntN(20000))
		if !waitFor(ctx, func() bool { return delivered() >= goal }) {
			t.Fatalf("kill %d: the ring is stuck at %d messages delivered (want %d): %+v, tail-head %d", i, delivered(), goal, r.Stats(), r.tail.Load()-r.head.Load())
		}
		k := rng.IntN(running)
		prods[k].cmd.Process().Kill()
		if err := prods[k].wait(); err == nil {
			t.Fatalf("kill %d: producer exited by itself:\n%s", i, prods[k].out.String())
		}
		prods[k] = start()
	}
	goal := delivered() + 1000
	if !waitFor(ctx, func() bool { return delivered() >= goal }) {
		t.Fatalf("after %d kills the ring is stuck: %+v", kills, r.Stats())
	}
	for _, p := range prods {
		p.cmd.Process().Kill()
		p.wait()
	}
	if err := keeper.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-cerr; !errors.Is(err, io.EOF) {
		t.Fatalf("consumer ended with %v, want io.EOF", err)
	}
	st := r.Stats()
	// A producer killed before it attached is not counted dead.
	if st.DeadProducers > uint64(kills+running) || st.Producers != 0 {
		t.Errorf("Stats = %+v, want at most %d dead producers and none attached", st, kills+running)
	}
	if tomb := c.Counters().Tombstones; tomb != st.LostByProducers {
		t.Errorf("consumer skipped %d tombstones, ring counts %d lost", tomb, st.LostByProducers)
	}
	t.Logf("%d kills: %d messages delivered, %d lost (claimed by a producer that died before publishing)", kills, delivered(), st.LostByProducers)
}

// TestRingConsumersKilledTogether kills MPMC consumer processes at random
// moments while others run: nothing arrives torn or twice, every message
// is seen or counted lost, and the producers never block for good.
// IPCPLAY_LONG=1 makes 300 kills.
func TestRingConsumersKilledTogether(t *testing.T) {
	kills := 20
	if raceBuild {
		kills = 5
	}
	if longTests() {
		kills = 300
	}
	const running, producers = 2, 2
	per := uint64(kills) * 20000
	total := producers * per
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cfg := RingConfig{Mode: MPMC, Slots: 64, MaxMessage: 64, MaxConsumers: running + 1, MaxProducers: producers + 1}
	reg, r, seenOff := newRingRegion(t, cfg, SeenSize(int(total)))
	seen, err := SeenAt(reg.Bytes(), seenOff, int(total))
	if err != nil {
		t.Fatal(err)
	}
	// The test holds a producer until the producers are done, and a
	// consumer that never reads while consumers come and go, so that
	// neither side sees the other gone before the end.
	keeper, err := r.Producer(RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held, err := r.Consumer(RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	start := func() *ringChild {
		return startRing(t, ctx, reg, RoleRingConsumer, nil, "-batch", strconv.Itoa(1+rng.IntN(64)),
			"-spin", strconv.Itoa(rng.IntN(300)), "-seen", strconv.Itoa(seenOff), "-per", strconv.FormatUint(per, 10),
			"-producers", strconv.Itoa(producers))
	}
	var cons []*ringChild
	for range running {
		cons = append(cons, start())
	}
	var prods []*ringChild
	for id := range producers {
		prods = append(prods, startRing(t, ctx, reg, RoleRingProducer, nil, "-id", strconv.Itoa(id),
			"-count", strconv.FormatUint(per, 10), "-msg", "64", "-batch", strconv.Itoa(1+rng.IntN(64))))
	}
	for i := range kills {
		// A kill loses at most a claim (64): the goal stays in reach.
		goal := min(seen.Count()+1+rng.IntN(int(per)/kills), int(total)-64*(kills+1))
		if !waitFor(ctx, func() bool { return seen.Count() >= goal }) {
			t.Fatalf("kill %d: the ring is stuck at %d messages seen (want %d): %+v", i, seen.Count(), goal, r.Stats())
		}
		k := rng.IntN(running)
		cons[k].cmd.Process().Kill()
		if err := cons[k].wait(); err == nil {
			t.Fatalf("kill %d: consumer exited by itself:\n%s", i, cons[k].out.String())
		}
		cons[k] = start()
	}
	for _, p := range prods {
		if err := p.wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := keeper.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range cons {
		if err := c.wait(); err != nil {
			t.Fatal(err)
		}
		if dup, torn := c.field(t, "dup"), c.field(t, "torn"); dup != 0 || torn != 0 {
			t.Errorf("consumer %d: %d duplicate, %d torn messages", i, dup, torn)
		}
	}
	held.Close()
	st := r.Reap()
	n := uint64(seen.Count())
	if n > total || n+st.LostByConsumers < total {
		t.Errorf("%d messages seen + %d lost, want %d in all", n, st.LostByConsumers, total)
	}
	t.Logf("%d kills: %d of %d messages seen, %d counted lost (taken by a consumer that died; some it had seen)", kills, n, total, st.LostByConsumers)
}

// TestRingSPSCConsumerKilledOften kills the SPSC consumer process at random
// moments, again and again, while this process produces: each new consumer
// takes over the dead one's entry (or attaches after the producer dropped
// it), nothing arrives torn or twice, and every message is seen or counted
// lost. IPCPLAY_LONG=1 makes 300 kills.
func TestRingSPSCConsumerKilledOften(t *testing.T) {
	kills := 20
	if raceBuild {
		kills = 5
	}
	if longTests() {
		kills = 300
	}
	total := uint64(kills+1) * 20000
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cfg := RingConfig{Mode: SPSC, Slots: 64, MaxMessage: 64}
	reg, r, seenOff := newRingRegion(t, cfg, SeenSize(int(total)))
	seen, err := SeenAt(reg.Bytes(), seenOff, int(total))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	start := func() *ringChild {
		return startRing(t, ctx, reg, RoleRingConsumer, nil, "-batch", strconv.Itoa(1+rng.IntN(64)),
			"-spin", strconv.Itoa(rng.IntN(300)), "-seen", strconv.Itoa(seenOff), "-per", strconv.FormatUint(total, 10))
	}
	cons := start()
	p, err := r.Producer(RingOptions{Batch: 1 + rng.IntN(32)})
	if err != nil {
		t.Fatal(err)
	}
	// The producer closes only once the kills are done: a consumer that
	// read everything would see EOF and end before its kill.
	perr := make(chan error, 1)
	produced, killed := make(chan struct{}), make(chan struct{})
	defer func() { cancel(); <-produced }()
	go func() {
		defer close(produced)
		batch := make([][]byte, 16)
		for i := range batch {
			batch[i] = make([]byte, 64)
		}
		for seq := uint64(0); seq < total; {
			k := min(len(batch), int(total-seq))
			for i := range k {
				Stamp(batch[i], 0, seq+uint64(i))
			}
			sent, err := p.SendBatch(ctx, batch[:k])
			seq += uint64(sent)
			if errors.Is(err, ErrNoConsumers) {
				// The consumer died and was dropped before the next
				// one attached: wait for it.
				if waitFor(ctx, func() bool { return r.Stats().Consumers != 0 }) {
					continue
				}
				err = ctx.Err()
			}
			if err != nil {
				perr <- err
				return
			}
		}
		select {
		case <-killed:
		case <-ctx.Done():
		}
		perr <- p.Close()
	}()
	for i := range kills {
		// A kill loses at most a batch (64): the goal stays in reach.
		goal := min(seen.Count()+1+rng.IntN(20000), int(total)-64*(kills+1))
		if !waitFor(ctx, func() bool { return seen.Count() >= goal }) {
			t.Fatalf("kill %d: the ring is stuck at %d messages seen (want %d): %+v", i, seen.Count(), goal, r.Stats())
		}
		cons.cmd.Process().Kill()
		if err := cons.wait(); err == nil {
			t.Fatalf("kill %d: consumer exited by itself:\n%s", i, cons.out.String())
		}
		cons = start()
	}
	close(killed)
	if err := <-perr; err != nil {
		t.Fatal(err)
	}
	if err := cons.wait(); err != nil {
		t.Fatal(err)
	}
	if dup, torn := cons.field(t, "dup"), cons.field(t, "torn"); dup != 0 || torn != 0 {
		t.Errorf("last consumer: %d duplicate, %d torn messages", dup, torn)
	}
	st := r.Reap()
	n := uint64(seen.Count())
	if n > total || n+st.LostByConsumers < total {
		t.Errorf("%d messages seen + %d lost, want %d in all", n, st.LostByConsumers, total)
	}
	t.Logf("%d kills: %d of %d messages seen, %d counted lost, %d dead consumers found", kills, n, total, st.LostByConsumers, st.DeadConsumers)
}
