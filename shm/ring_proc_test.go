package shm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ipcplay/procs"
)

// registerRingRoles registers the ring's exported roles and the test-only
// pipe echo for this test binary.
func registerRingRoles() {
	procs.Register(RoleRingProducer, RingProducerMain)
	procs.Register(RoleRingConsumer, RingConsumerMain)
	procs.Register(RoleRingEcho, RingEchoMain)
	procs.Register(RoleBareProducer, BareProducerMain)
	procs.Register(rolePipeEcho, pipeEchoMain)
	procs.Register(roleSPSCMix, spscMixMain)
}

func longTests() bool { return os.Getenv("IPCPLAY_LONG") == "1" }

// ringChild is a started role sharing a region; out is its stdout.
type ringChild struct {
	cmd  *procs.Cmd
	out  bytes.Buffer
	once sync.Once
	err  error
}

func (c *ringChild) wait() error {
	c.once.Do(func() { c.err = c.cmd.Wait() })
	return c.err
}

// startRing starts role with args over region reg and extra files at
// procs.FDExtra on; the child is killed and waited for at cleanup.
func startRing(t testing.TB, ctx context.Context, reg *Region, role string, extra []*os.File, args ...string) *ringChild {
	t.Helper()
	c := &ringChild{cmd: procs.Command(ctx, role, append([]string{"-size", strconv.Itoa(reg.Len())}, args...)...)}
	c.cmd.ExtraFiles = append([]*os.File{nil, reg.File()}, extra...)
	c.cmd.Stdout = &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.cmd.Process().Kill()
		c.wait()
	})
	return c
}

// field returns the integer after "name=" in the child's output.
func (c *ringChild) field(t testing.TB, name string) uint64 {
	t.Helper()
	for _, f := range strings.Fields(c.out.String()) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("%s in %q: %v", name, c.out.String(), err)
			}
			return n
		}
	}
	t.Fatalf("no %s= in child output %q", name, c.out.String())
	return 0
}

func ringRegion(t testing.TB, size int) *Region {
	t.Helper()
	r, err := New("shm-ring-test", size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newRingRegion(t testing.TB, cfg RingConfig, extra int) (*Region, *Ring, int) {
	t.Helper()
	size, err := RingSize(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := ringRegion(t, (size+extra+4095)&^4095)
	r, err := MakeRing(reg.Bytes(), 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return reg, r, (size + 63) &^ 63
}

// TestRingExactlyOnceProcesses: producer and consumer processes move every
// message exactly once; consumers mark a shared bitmap, so a duplicate
// across processes is found. IPCPLAY_LONG=1 moves 10 M messages.
func TestRingExactlyOnceProcesses(t *testing.T) {
	for _, tc := range []struct {
		mode                 RingMode
		producers, consumers int
		per                  uint64
	}{
		{SPSC, 1, 1, 1_000_000},
		{MPMC, 2, 2, 250_000},
	} {
		switch {
		case longTests():
			tc.per = 10_000_000 / uint64(tc.producers)
		case raceBuild:
			tc.per /= 10 // instrumented children run several times slower
		}
		t.Run(fmt.Sprintf("mode=%v/producers=%d/consumers=%d", tc.mode, tc.producers, tc.consumers), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			total := uint64(tc.producers) * tc.per
			cfg := RingConfig{Mode: tc.mode, Slots: 1024, MaxMessage: 64}
			reg, r, seenOff := newRingRegion(t, cfg, SeenSize(int(total)))
			seen, err := SeenAt(reg.Bytes(), seenOff, int(total))
			if err != nil {
				t.Fatal(err)
			}
			per := strconv.FormatUint(tc.per, 10)
			var cons, prods []*ringChild
			for range tc.consumers {
				cons = append(cons, startRing(t, ctx, reg, RoleRingConsumer, nil, "-batch", "64",
					"-seen", strconv.Itoa(seenOff), "-per", per, "-producers", strconv.Itoa(tc.producers)))
			}
			// The consumers see EOF once every producer that attached is
			// gone: with several producers, one may finish before another
			// has started. The test holds a producer of its own until all
			// are done.
			var keeper *RingProducer
			if tc.producers > 1 {
				if keeper, err = r.Producer(RingOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			for id := range tc.producers {
				prods = append(prods, startRing(t, ctx, reg, RoleRingProducer, nil, "-id", strconv.Itoa(id),
					"-count", per, "-msg", "64", "-batch", "32"))
			}
			for _, c := range prods {
				if err := c.wait(); err != nil {
					t.Fatal(err)
				}
			}
			if keeper != nil {
				if err := keeper.Close(); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range cons {
				if err := c.wait(); err != nil {
					t.Fatal(err)
				}
			}
			el := time.Since(start)
			var got uint64
			for i, c := range cons {
				got += c.field(t, "received")
				if torn, dup := c.field(t, "torn"), c.field(t, "dup"); torn != 0 || dup != 0 {
					t.Errorf("consumer %d: %d torn, %d duplicate messages", i, torn, dup)
				}
			}
			if got != total || seen.Count() != int(total) {
				t.Errorf("received %d, %d distinct; want %d", got, seen.Count(), total)
			}
			if st := r.Stats(); st.LostByConsumers+st.LostByProducers != 0 {
				t.Errorf("Stats = %+v, want nothing lost", st)
			}
			t.Logf("%d messages in %v (%.1f M/s, start-up included)", total, el, float64(total)/el.Seconds()/1e6)
		})
	}
}

// TestRingProducerKilled kills producer processes at random moments, 100
// times: no message arrives torn, none twice or out of order, the ring
// never stays blocked, and what the dead claimed is counted lost.
func TestRingProducerKilled(t *testing.T) {
	kills := 100
	if raceBuild {
		kills = 10 // instrumented children start slowly; IPCPLAY_LONG=1 keeps 100
	}
	if longTests() {
		kills = 100
	}
	for _, mode := range []RingMode{SPSC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			cfg := RingConfig{Mode: mode, Slots: 256, MaxMessage: 200, MaxProducers: 3}
			reg, r, _ := newRingRegion(t, cfg, 0)
			c, err := r.Consumer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// The consumer: checks order per producer, and tells the
			// killing loop when producer want.id has delivered want.n.
			var mu sync.Mutex
			next := make(map[uint32]uint64)
			type goal struct {
				id    uint32
				n     uint64
				reach chan struct{}
			}
			var want *goal
			var lastDone atomic.Bool
			cerr := make(chan error, 1)
			consumed := make(chan struct{})
			// The consumer reads the region: the test waits for it
			// before the region is unmapped in Cleanup, whatever happens.
			defer func() { cancel(); <-consumed }()
			go func() {
				defer close(consumed)
				defer c.Close()
				for {
					_, err := c.RecvBatch(ctx, 100, func(m []byte) {
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
						if want != nil && want.id == id && seq+1 >= want.n {
							close(want.reach)
							want = nil
						}
					})
					if errors.Is(err, io.EOF) && !lastDone.Load() {
						// Between two producers nobody is attached: the
						// ring says EOF. Wait for the next one.
						if waitFor(ctx, func() bool { return r.Stats().Producers != 0 || lastDone.Load() }) {
							continue
						}
						err = ctx.Err()
					}
					if err != nil {
						cerr <- err
						return
					}
				}
			}()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
			for i := range kills {
				g := &goal{id: uint32(i), n: 1 + uint64(rng.IntN(4000)), reach: make(chan struct{})}
				mu.Lock()
				want = g
				mu.Unlock()
				p := startRing(t, ctx, reg, RoleRingProducer, nil, "-id", strconv.Itoa(i), "-msg", strconv.Itoa(StampSize+rng.IntN(177)),
					"-batch", strconv.Itoa(1+rng.IntN(64)), "-spin", strconv.Itoa(rng.IntN(300)))
				exited := make(chan struct{})
				go func() { p.wait(); close(exited) }() // ends when the child does; Cleanup kills it
				select {
				case <-g.reach:
				case <-exited:
					t.Fatalf("kill %d: producer exited before it was killed: %v\n%s", i, p.wait(), p.out.String())
				case err := <-cerr:
					t.Fatalf("kill %d: consumer: %v", i, err)
				case <-ctx.Done():
					t.Fatalf("kill %d: producer %d never delivered %d messages: %v", i, i, g.n, p.wait())
				}
				p.cmd.Process().Kill()
				if err := p.wait(); err == nil {
					t.Fatalf("producer %d exited by itself", i)
				}
			}
			// A last producer that closes: the consumer must drain the
			// ring past every dead claim and then see EOF.
			last := startRing(t, ctx, reg, RoleRingProducer, nil, "-id", strconv.Itoa(kills), "-count", "1000", "-msg", "64")
			if err := last.wait(); err != nil {
				t.Fatal(err)
			}
			lastDone.Store(true)
			if err := <-cerr; !errors.Is(err, io.EOF) {
				t.Fatalf("consumer ended with %v, want io.EOF", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if next[uint32(kills)] != 1000 {
				t.Errorf("the last producer delivered %d of 1000", next[uint32(kills)])
			}
			var delivered uint64
			for _, n := range next {
				delivered += n
			}
			st := r.Stats()
			if st.DeadProducers != uint64(kills) || st.Producers != 0 {
				t.Errorf("Stats = %+v, want %d dead producers and none attached", st, kills)
			}
			// MPMC: a dead producer's claims are tombstoned. SPSC: what
			// its SendBatch had written and not published (at most one
			// call of up to 64 messages) is counted lost by whoever
			// took over.
			switch tomb := c.Counters().Tombstones; {
			case mode == MPMC && tomb != st.LostByProducers:
				t.Errorf("consumer skipped %d tombstones, ring counts %d lost", tomb, st.LostByProducers)
			case mode == SPSC && (tomb != 0 || st.LostByProducers > 64*uint64(kills)):
				t.Errorf("consumer skipped %d tombstones, ring counts %d lost; want none and at most %d", tomb, st.LostByProducers, 64*kills)
			}
			t.Logf("%d kills: %d messages delivered, %d lost (claimed or written by a producer that died before publishing)", kills, delivered, st.LostByProducers)
		})
	}
}

// TestRingConsumerKilled kills a consumer process mid-stream: what it had
// taken is counted lost, nothing arrives twice, the rest arrives, and a
// producer left with no consumer gets ErrNoConsumers instead of blocking.
func TestRingConsumerKilled(t *testing.T) {
	for _, mode := range []RingMode{SPSC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			const total = 200_000
			cfg := RingConfig{Mode: mode, Slots: 64, MaxMessage: 64}
			reg, r, seenOff := newRingRegion(t, cfg, SeenSize(total))
			seen, err := SeenAt(reg.Bytes(), seenOff, total)
			if err != nil {
				t.Fatal(err)
			}
			consumer := func(args ...string) *ringChild {
				return startRing(t, ctx, reg, RoleRingConsumer, nil, append([]string{"-batch", "16",
					"-seen", strconv.Itoa(seenOff), "-per", strconv.Itoa(total)}, args...)...)
			}
			// The victim, alone, stops inside its callback for message
			// 50001, holding its batch; once the bitmap shows it got
			// there, it is killed. The producer then finds the ring full
			// and nobody to empty it: it must get ErrNoConsumers, after
			// which a second consumer takes over.
			victim := consumer("-stall", "50001")
			var survivor *ringChild
			killed := make(chan struct{})
			defer func() { cancel(); <-killed }() // it reads the region: done before Cleanup unmaps it
			go func() {
				defer close(killed)
				if waitFor(ctx, func() bool { return seen.Count() > 50000 }) {
					victim.cmd.Process().Kill()
					victim.wait()
				}
			}()
			p, err := r.Producer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			batch := make([][]byte, 64)
			for i := range batch {
				batch[i] = make([]byte, 64)
			}
			sawNoConsumers := false
			for seq := uint64(0); seq < total; {
				k := min(len(batch), int(total-seq))
				for i := range k {
					Stamp(batch[i], 0, seq+uint64(i))
				}
				sent, err := p.SendBatch(ctx, batch[:k])
				seq += uint64(sent)
				switch {
				case errors.Is(err, ErrNoConsumers) && survivor == nil:
					sawNoConsumers = true
					<-killed
					survivor = consumer()
					if !waitFor(ctx, func() bool { return r.Stats().Consumers != 0 }) {
						t.Fatal("the new consumer never attached")
					}
				case err != nil:
					t.Fatalf("send %d: %v", seq, err)
				}
			}
			<-killed
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := survivor.wait(); err != nil {
				t.Fatal(err)
			}
			st := r.Reap()
			if dup, torn := survivor.field(t, "dup"), survivor.field(t, "torn"); dup != 0 || torn != 0 {
				t.Errorf("%d duplicate, %d torn messages", dup, torn)
			}
			n := uint64(seen.Count())
			if n > total || n+st.LostByConsumers < total {
				t.Errorf("%d messages seen + %d lost, want %d in all", n, st.LostByConsumers, total)
			}
			if st.DeadConsumers != 1 || st.LostByConsumers == 0 {
				t.Errorf("Stats = %+v, want one dead consumer and what it held lost", st)
			}
			if !sawNoConsumers {
				t.Error("the producer never got ErrNoConsumers with its only consumer dead")
			}
			t.Logf("seen %d, lost %d (taken by the dead consumer), missing %d", n, st.LostByConsumers, total-n)
		})
	}
}
