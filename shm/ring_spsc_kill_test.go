package shm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// roleSPSCMix is an SPSC producer that mixes Send, Write, SendBatch and
// Flush at random, forever, as producer -id, and records its progress in
// the two words at -seen + 16*id: the count of messages it knows are
// published (after Send, SendBatch and Flush return) and the count whose
// call has returned (Write included).
const roleSPSCMix = "shm-test-spsc-mix"

func spscMixMain(ctx context.Context, args []string) error {
	f, err := parseRoleFlags(roleSPSCMix, args)
	if err != nil {
		return err
	}
	reg, done, err := f.region()
	if err != nil {
		return err
	}
	defer done()
	ring, err := OpenRing(reg.Bytes(), f.off)
	if err != nil {
		return err
	}
	prog, err := wordAt(reg.Bytes(), f.seen+16*int(f.id), 16)
	if err != nil {
		return err
	}
	pub, wrote := (*atomic.Uint64)(prog), (*atomic.Uint64)(unsafe.Add(prog, 8))
	p, err := ring.Producer(RingOptions{Spin: f.spin, Batch: f.batch})
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(f.id)))
	msgs := make([][]byte, 2*f.batch+1)
	for i := range msgs {
		msgs[i] = make([]byte, StampSize+rng.IntN(f.msg-StampSize+1))
	}
	var seq uint64
	for f.count == 0 || seq < f.count {
		switch op := rng.IntN(20); {
		case op < 3: // Send
			Stamp(msgs[0], uint32(f.id), seq)
			if err := p.Send(ctx, msgs[0]); err != nil {
				return err
			}
			seq++
			pub.Store(seq)
		case op < 17: // Write
			Stamp(msgs[0], uint32(f.id), seq)
			if err := p.Write(ctx, msgs[0]); err != nil {
				return err
			}
			seq++
		case op < 19: // SendBatch
			k := 1 + rng.IntN(len(msgs))
			if f.count != 0 {
				k = int(min(uint64(k), f.count-seq))
			}
			for i := range k {
				Stamp(msgs[i], uint32(f.id), seq+uint64(i))
			}
			n, err := p.SendBatch(ctx, msgs[:k])
			seq += uint64(n)
			if err != nil {
				return err
			}
			pub.Store(seq)
		default:
			p.Flush()
			pub.Store(seq)
		}
		wrote.Store(seq)
		if rng.IntN(16) == 0 {
			// Pacing, so that the consumer keeps up and a kill finds
			// the producer between calls with messages pending, not
			// waiting on a full ring (which publishes them first).
			time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
		}
	}
	return p.Close()
}

// TestRingSPSCProducerKilledContinues kills an SPSC producer process that
// mixes Send, Write, SendBatch and Flush at random moments, again and
// again, each time starting a new producer that takes over the ring (with
// its counters near 2^64 or 2^32): no message arrives torn, twice, out of
// order or after a later producer's; everything a dead producer knew was
// published arrives; what it lost is at most what Write left pending
// (Batch-1 messages) and the call it died in, and is counted lost.
// IPCPLAY_LONG=1 makes 200 kills.
func TestRingSPSCProducerKilledContinues(t *testing.T) {
	kills := 30
	if raceBuild {
		kills = 8
	}
	if longTests() {
		kills = 200
	}
	for _, start := range []uint64{math.MaxUint64 - 3000, math.MaxUint32 - 3000} {
		t.Run(fmt.Sprintf("start=%#x", start), func(t *testing.T) {
			spscProducerKills(t, kills, start)
		})
	}
}

func spscProducerKills(t *testing.T, kills int, start uint64) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cfg := RingConfig{Mode: SPSC, Slots: 64, MaxMessage: 80, Start: start}
	reg, r, progOff := newRingRegion(t, cfg, 16*(kills+1))
	prog := func(id int) (pub, wrote uint64) {
		p, _ := wordAt(reg.Bytes(), progOff+16*id, 16)
		return (*atomic.Uint64)(p).Load(), (*atomic.Uint64)(unsafe.Add(p, 8)).Load()
	}
	c, err := r.Consumer(RingOptions{Spin: 50})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := make([]uint64, kills+1) // messages delivered, per producer
	var goalID int
	var goalN uint64
	reach := make(chan struct{}, 1)
	var lastDone atomic.Bool
	cerr := make(chan error, 1)
	consumed := make(chan struct{})
	defer func() { cancel(); <-consumed }()
	go func() {
		defer close(consumed)
		defer c.Close()
		last := 0
		for {
			_, err := c.RecvBatch(ctx, 1+rand.IntN(100), func(m []byte) {
				id, seq, err := CheckStamp(m)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
				case int(id) < last || int(id) > kills:
					err = fmt.Errorf("message %d of producer %d after producer %d's", seq, id, last)
				case seq != got[id]:
					err = fmt.Errorf("producer %d: message %d, want %d", id, seq, got[id])
				}
				if err != nil {
					if ctx.Err() == nil {
						cerr <- err
						cancel()
					}
					return
				}
				last = int(id)
				got[id]++
				if int(id) == goalID && got[id] == goalN {
					reach <- struct{}{}
				}
			})
			if errors.Is(err, io.EOF) && !lastDone.Load() {
				// Between two producers nobody is attached.
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
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	batches := make([]int, kills+1)
	for i := range kills {
		batches[i] = 1 + rng.IntN(40)
		mu.Lock()
		goalID, goalN = i, 1+uint64(rng.IntN(3000))
		mu.Unlock()
		p := startRing(t, ctx, reg, roleSPSCMix, nil, "-id", strconv.Itoa(i), "-msg", "80",
			"-batch", strconv.Itoa(batches[i]), "-spin", strconv.Itoa(rng.IntN(300)), "-seen", strconv.Itoa(progOff))
		exited := make(chan struct{})
		go func() { p.wait(); close(exited) }() // ends when the child does; Cleanup kills it
		select {
		case <-reach:
		case <-exited:
			t.Fatalf("kill %d: producer exited before it was killed: %v\n%s", i, p.wait(), p.out.String())
		case err := <-cerr:
			t.Fatalf("kill %d: consumer: %v", i, err)
		case <-ctx.Done():
			mu.Lock()
			n := got[i]
			mu.Unlock()
			t.Fatalf("kill %d: producer delivered %d of %d messages: tail %#x head %#x: %v", i, n, goalN, r.tail.Load(), r.head.Load(), p.wait())
		}
		p.cmd.Process().Kill()
		if err := p.wait(); err == nil {
			t.Fatalf("kill %d: producer exited by itself", i)
		}
	}
	mu.Lock()
	goalID = -1
	mu.Unlock()
	last := startRing(t, ctx, reg, roleSPSCMix, nil, "-id", strconv.Itoa(kills), "-count", "1000", "-msg", "80",
		"-batch", "7", "-seen", strconv.Itoa(progOff))
	if err := last.wait(); err != nil {
		t.Fatalf("last producer: %v\n%s", err, last.out.String())
	}
	lastDone.Store(true)
	if err := <-cerr; !errors.Is(err, io.EOF) {
		t.Fatalf("consumer ended with %v, want io.EOF", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got[kills] != 1000 {
		t.Errorf("the last producer delivered %d of 1000", got[kills])
	}
	// What a dead producer wrote and never published is counted lost by
	// the one that took over (or by a reaper): at least what its
	// returned calls wrote and was not delivered, at most that and the
	// call it died in.
	var lost, lostMin, lostMax, delivered uint64
	for i := range kills {
		pub, wrote := prog(i)
		delivered += got[i]
		lostMax += wrote + uint64(2*batches[i]+1) - got[i]
		if got[i] < pub || got[i] > wrote+uint64(2*batches[i]+1) {
			t.Errorf("producer %d: %d messages delivered, %d were published, %d written by calls that returned (Batch %d)", i, got[i], pub, wrote, batches[i])
		}
		if wrote > got[i] {
			lost += wrote - got[i]
			lostMin += wrote - got[i]
			if wrote-got[i] >= uint64(batches[i]) {
				t.Errorf("producer %d: %d messages delivered, %d written with Batch %d", i, got[i], wrote, batches[i])
			}
		}
	}
	st := r.Stats()
	if st.DeadProducers > uint64(kills) || st.Producers != 0 {
		t.Errorf("Stats = %+v, want at most %d dead producers and none attached", st, kills)
	}
	if st.LostByProducers < lostMin || st.LostByProducers > lostMax {
		t.Errorf("LostByProducers = %d, want %d to %d (written and never delivered)", st.LostByProducers, lostMin, lostMax)
	}
	t.Logf("%d kills: %d messages delivered, %d written by Write and lost unpublished; ring stats %+v", kills, delivered, lost, st)
}
