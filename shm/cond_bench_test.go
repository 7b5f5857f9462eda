package shm

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Slots of the hand-off benchmark, at offVals.
const (
	valTurn  = 10 // even: the parent's turn; odd: the child's; -1: stop
	valFutex = 11 // futex calls the child made
)

// condHandoffChild is the child half of BenchmarkCondHandoff: whenever
// the turn is odd it makes it even and signals, until the turn is -1.
func condHandoffChild(ctx context.Context, args []string) error {
	c, err := childCond()
	if err != nil {
		return err
	}
	defer c.r.Close()
	before := futexCalls.Load()
	if err := c.cmu.Lock(ctx); err != nil {
		return err
	}
	c.vals.Add(valWaiting, 1)
	for {
		t := c.vals.Load(valTurn)
		for ; t >= 0 && t%2 == 0; t = c.vals.Load(valTurn) {
			if err := c.notEmpty.Wait(ctx); err != nil {
				c.cmu.Unlock()
				return err
			}
		}
		if t < 0 {
			c.cmu.Unlock()
			c.vals.Store(valFutex, int64(futexCalls.Load()-before))
			return nil
		}
		c.vals.Store(valTurn, t+1)
		c.notEmpty.Signal()
	}
}

// BenchmarkCondHandoff passes a turn back and forth under a condition
// variable, the notebook's Condition hand-off: one side makes the turn
// the other's, signals, and waits until it comes back. impl=sync is two
// goroutines on sync.Cond; impl=shm-procs is this process and a child on
// a shared Cond and Mutex. It reports the time per hand-off (one side
// signalling to the other side running), and for shm the futex system
// calls per hand-off counted by both processes.
func BenchmarkCondHandoff(b *testing.B) {
	b.Run("impl=sync", func(b *testing.B) {
		var mu sync.Mutex
		cond := sync.NewCond(&mu)
		turn := 0
		var wg sync.WaitGroup
		mu.Lock()
		wg.Go(func() {
			mu.Lock()
			defer mu.Unlock()
			for {
				for turn >= 0 && turn%2 == 0 {
					cond.Wait()
				}
				if turn < 0 {
					return
				}
				turn++
				cond.Signal()
			}
		})
		for b.Loop() {
			turn++
			cond.Signal()
			for turn%2 == 1 {
				cond.Wait()
			}
		}
		turn = -1
		cond.Signal()
		mu.Unlock()
		wg.Wait()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/handoff")
	})
	b.Run("impl=shm-procs", func(b *testing.B) {
		r, err := New("bench-cond", lockRegionSize)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		lb, err := lockViews(r)
		if err != nil {
			b.Fatal(err)
		}
		c, err := condViews(lb)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		wait := startChildren(b, ctx, lb, 1, roleCondHands, nil)
		if !waitFor(ctx, func() bool { return lb.vals.Load(valWaiting) == 1 }) {
			b.Fatal("the child did not start")
		}
		if err := c.cmu.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		before := futexCalls.Load()
		n := 0
		for b.Loop() {
			lb.vals.Add(valTurn, 1)
			c.notEmpty.Signal()
			for lb.vals.Load(valTurn)%2 == 1 {
				if err := c.notEmpty.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			n++
		}
		mine := futexCalls.Load() - before
		lb.vals.Store(valTurn, -1)
		c.notEmpty.Signal()
		c.cmu.Unlock()
		if err := wait(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*n), "ns/handoff")
		b.ReportMetric(float64(mine+uint64(lb.vals.Load(valFutex)))/float64(2*n), "futex/handoff")
	})
}

// Slots of the broadcast benchmark, at offVals.
const (
	valGen   = 12 // the broadcast generation; -1: stop
	valWoken = 13 // wake-ups counted by the children
	valFutC  = 14 // futex calls the children made
)

const roleBcast = "shm-test-broadcast" // args: wakeall|requeue; wait for each new generation

func broadcastChild(ctx context.Context, args []string) error {
	c, err := childCond()
	if err != nil {
		return err
	}
	defer c.r.Close()
	c.notEmpty.requeue = args[0] == "requeue"
	before := futexCalls.Load()
	if err := c.cmu.Lock(ctx); err != nil {
		return err
	}
	seen := c.vals.Load(valGen)
	for {
		for g := c.vals.Load(valGen); g == seen; g = c.vals.Load(valGen) {
			if err := c.notEmpty.Wait(ctx); err != nil {
				c.cmu.Unlock()
				return err
			}
		}
		seen = c.vals.Load(valGen)
		if seen < 0 {
			c.cmu.Unlock()
			c.vals.Add(valFutC, int64(futexCalls.Load()-before))
			return nil
		}
		c.vals.Add(valWoken, 1)
	}
}

// BenchmarkCondBroadcast wakes waiters=K child processes waiting on one
// Cond and times until every one of them has relocked the mutex and seen
// the broadcast: mode=wakeall wakes them all to fight for the mutex,
// mode=requeue wakes one and moves the rest onto the mutex's futex word
// (FUTEX_CMP_REQUEUE). It reports futex calls per broadcast, both sides.
func BenchmarkCondBroadcast(b *testing.B) {
	for _, mode := range []string{"wakeall", "requeue"} {
		for _, k := range []int{2, 6} {
			b.Run(fmt.Sprintf("mode=%s/waiters=%d", mode, k), func(b *testing.B) {
				benchBroadcast(b, mode, k)
			})
		}
	}
}

func benchBroadcast(b *testing.B, mode string, k int) {
	r, err := New("bench-bcast", lockRegionSize)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	lb, err := lockViews(r)
	if err != nil {
		b.Fatal(err)
	}
	c, err := condViews(lb)
	if err != nil {
		b.Fatal(err)
	}
	c.notEmpty.requeue = mode == "requeue"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wait := startChildren(b, ctx, lb, k, roleBcast, func(int) []string { return []string{mode} })
	before := futexCalls.Load()
	n := int64(0)
	for b.Loop() {
		// All k asleep on the Cond, then one broadcast under the mutex.
		for c.notEmpty.waiters.Load() != uint32(k) {
			runtime.Gosched()
		}
		if err := c.cmu.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		lb.vals.Add(valGen, 1)
		if mode == "requeue" {
			c.notEmpty.broadcastRequeue()
		} else {
			c.notEmpty.Broadcast()
		}
		c.cmu.Unlock()
		n++
		for lb.vals.Load(valWoken) != n*int64(k) {
			runtime.Gosched()
		}
	}
	mine := futexCalls.Load() - before
	for c.notEmpty.waiters.Load() != uint32(k) {
		runtime.Gosched()
	}
	if err := c.cmu.Lock(ctx); err != nil {
		b.Fatal(err)
	}
	lb.vals.Store(valGen, -1)
	c.notEmpty.Broadcast()
	c.cmu.Unlock()
	if err := wait(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(mine+uint64(lb.vals.Load(valFutC)))/float64(n), "futex/broadcast")
}
