package shm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// deadRec returns a process record that names this process's pid with
// another start time: a process that died and whose pid was reused.
func deadRec() uint64 {
	me := myIdent()
	return uint64(me.pid())<<32 | uint64(me.start()+2) // two ticks off: sameStart allows one
}

// loseNextClaim makes the next MPMC claim of this process lose its
// compare-and-swap to winner, which claims n positions from the same place
// and then dies before publishing or releasing them.
func loseNextClaim(t *testing.T, winner *ringEntry, n uint64) {
	t.Helper()
	beforeClaim = func(index *atomic.Uint64, pos uint64) {
		beforeClaim = nil
		winner.intent.Store(uint64(uint32(pos)) | n<<32)
		if !index.CompareAndSwap(pos, pos+n) {
			t.Errorf("winner's claim at %d failed", pos)
		}
		winner.rec.Store(deadRec())
	}
	t.Cleanup(func() { beforeClaim = nil })
}

// cancelled returns a context that is done already: a wait returns at once.
func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// TestRingLostClaimKeepsNoIntent: a producer (consumer) whose claim loses
// the compare-and-swap on tail (head) to another process, and that then
// waits because the ring is full (empty), must not keep the intent of the
// claim it lost. That intent covers the winner's positions: if the winner
// dies, they are never tombstoned (released), and with the ring full every
// producer and consumer waits for ever.
func TestRingLostClaimKeepsNoIntent(t *testing.T) {
	t.Run("producer", func(t *testing.T) {
		r := newLocalRing(t, RingConfig{Mode: MPMC, Slots: 4, MaxMessage: 8, MaxProducers: 2})
		a, err := r.Producer(RingOptions{Spin: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := r.Producer(RingOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.Consumer(RingOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		loseNextClaim(t, b.e, 4) // b takes the whole ring and dies
		if err := a.Send(cancelled(t), []byte("a")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Send into the ring b filled = %v, want context.Canceled", err)
		}
		if st := r.Reap(); st.LostByProducers != 4 || st.DeadProducers != 1 {
			t.Fatalf("after b died: %+v, want 1 dead producer and its 4 positions lost", st)
		}
		n, err := c.TryRecvBatch(8, func(m []byte) { t.Errorf("got %q from a dead claim", m) })
		if n != 0 || err != nil {
			t.Fatalf("TryRecvBatch over the tombstones = %d, %v", n, err)
		}
		if err := a.Send(t.Context(), []byte("a")); err != nil {
			t.Fatal(err)
		}
		if n, err := c.TryRecvBatch(8, func([]byte) {}); n != 1 || err != nil {
			t.Fatalf("TryRecvBatch = %d, %v; want a's message", n, err)
		}
	})
	t.Run("consumer", func(t *testing.T) {
		r := newLocalRing(t, RingConfig{Mode: MPMC, Slots: 4, MaxMessage: 8, MaxConsumers: 2})
		p, err := r.Producer(RingOptions{Spin: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		a, err := r.Consumer(RingOptions{Spin: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		d, err := r.Consumer(RingOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := p.SendBatch(t.Context(), [][]byte{{1}, {2}, {3}, {4}}); n != 4 || err != nil {
			t.Fatalf("SendBatch = %d, %v", n, err)
		}
		loseNextClaim(t, d.e, 4) // d takes the whole ring and dies
		if _, err := a.RecvBatch(cancelled(t), 8, func(m []byte) { t.Errorf("got %v that d took", m) }); !errors.Is(err, context.Canceled) {
			t.Fatalf("RecvBatch after d took everything = %v, want context.Canceled", err)
		}
		if st := r.Reap(); st.LostByConsumers != 4 || st.DeadConsumers != 1 {
			t.Fatalf("after d died: %+v, want 1 dead consumer and the 4 messages it took lost", st)
		}
		if err := p.Send(cancelled(t), []byte{5}); err != nil {
			t.Fatalf("Send after d's slots were released: %v", err)
		}
		if n, err := a.TryRecvBatch(8, func([]byte) {}); n != 1 || err != nil {
			t.Fatalf("TryRecvBatch = %d, %v; want the new message", n, err)
		}
	})
}

// TestRingUnwaitTakesOnlyItsOwnCount: a waiter a that counted itself, was
// counted out by a waker's reset, and then found the ring ready must not
// take back the count of a waiter b that counted itself after the reset:
// b sleeps, and with no count left no waker wakes it (it sleeps its whole
// wait slice, 20 ms, with the ring ready).
func TestRingUnwaitTakesOnlyItsOwnCount(t *testing.T) {
	var word, waiters atomic.Uint32
	q := ringQueue{&word, &waiters}
	a := q.enter()
	if !q.wake() {
		t.Fatal("a waiter is counted, but wake makes no wake-up")
	}
	q.enter()   // b counts itself, and will sleep
	q.unwait(a) // a found the ring ready: it takes its count back
	if !q.wake() {
		t.Fatal("b sleeps counted, but wake makes no wake-up: a took b's count")
	}
	// Within one generation a waiter does take its own count back.
	c := q.enter()
	q.unwait(c)
	if q.wake() {
		t.Error("the only waiter took its count back, but wake still makes a wake-up")
	}
}

// TestRingReapDoesNotDropLiveConsumersTake: a producer that finds an SPSC
// consumer dead drops what it had taken (head moves up to taken). If a new
// consumer takes the dead one's entry while the producer is still looking
// at /proc, and starts a batch, the producer must not then drop the new
// consumer's batch: that counts live messages lost and lets the producer
// overwrite slots the consumer is reading (torn messages).
func TestRingReapDoesNotDropLiveConsumersTake(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	r := newLocalRing(t, RingConfig{Mode: SPSC, Slots: 4, MaxMessage: 8})
	p, err := r.Producer(RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	x, err := r.Consumer(RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x.e.rec.Store(deadRec()) // x died holding nothing
	if n, err := p.SendBatch(ctx, [][]byte{{1}, {2}, {3}, {4}}); n != 4 || err != nil {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	head := r.head.Load()
	// While the reaper reads /proc about x, n attaches in x's entry and
	// stops inside its first batch.
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	defer func() { cancel(); close(release); <-done }()
	var hooked atomic.Bool
	prev := readProcStat
	t.Cleanup(func() { readProcStat = prev })
	readProcStat = func(pid int) ([]byte, error) {
		if !hooked.CompareAndSwap(false, true) {
			return prev(pid)
		}
		go func() {
			n, err := r.Consumer(RingOptions{})
			if err != nil {
				done <- err
				return
			}
			defer n.Close()
			// The first message stops the batch until the reaper has
			// looked; a bare send, not a select with default: the hook
			// may not be waiting yet when the batch starts.
			first := true
			_, err = n.RecvBatch(ctx, 2, func([]byte) {
				if !first {
					return
				}
				first = false
				select {
				case inside <- struct{}{}:
					<-release
				case <-ctx.Done():
				}
			})
			done <- err
		}()
		select {
		case <-inside:
		case err := <-done:
			t.Errorf("new consumer: %v", err)
			done <- err
		case <-ctx.Done():
		}
		return prev(pid)
	}
	// What the producer's waitSpace does once per wait slice.
	r.consumers().reap(func(*ringEntry) { r.dropTaken() })
	st := r.Stats()
	if h := r.head.Load(); h != head || st.LostByConsumers != 0 {
		t.Errorf("head moved %d while the new consumer reads its batch, %d messages counted lost; want 0, 0", h-head, st.LostByConsumers)
	}
}

// TestRingAttachWhileReaped: a consumer attaching in a dead consumer's
// entry while a producer reaps that entry must get an entry, not
// ErrRingBusy: the entry it wanted is free, or about to be. The reaper
// runs while the attacher reads /proc about the dead one (it frees the
// entry between the attacher's look and its compare-and-swap), and then
// again holding the entry while the attacher looks.
func TestRingAttachWhileReaped(t *testing.T) {
	for _, hold := range []bool{false, true} {
		t.Run(fmt.Sprintf("holding=%v", hold), func(t *testing.T) {
			r := newLocalRing(t, RingConfig{Mode: SPSC, Slots: 4, MaxMessage: 8})
			x, err := r.Consumer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			x.e.rec.Store(deadRec())
			if hold {
				x.e.rec.Store(self() | recReaping) // a live reaper holds it
			}
			var hooked atomic.Bool
			prev := readProcStat
			t.Cleanup(func() { readProcStat = prev })
			readProcStat = func(pid int) ([]byte, error) {
				if hooked.CompareAndSwap(false, true) {
					if hold {
						x.e.rec.Store(0) // the reaper is done
					} else {
						r.consumers().reap(func(*ringEntry) { r.dropTaken() })
					}
				}
				return prev(pid)
			}
			n, err := r.Consumer(RingOptions{})
			if err != nil {
				t.Fatalf("Consumer while the dead one's entry is reaped: %v", err)
			}
			n.Close()
		})
	}
}
