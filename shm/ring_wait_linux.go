package shm

import (
	"context"
	"sync/atomic"
	"time"
)

// Waiting: a short spin, then futex sleeps in wait slices, and wake-ups
// made only when the waiter count says someone sleeps (rule 6).

// A ringQueue is a futex word and the count of those sleeping on it. The
// waiters word holds the count in its low 16 bits and, in its high 16, a
// generation that every reset of the count bumps: a waiter that takes its
// count back does so only within the generation it counted itself in, so
// it never takes the count of a sleeper that came after a reset.
type ringQueue struct {
	word, waiters *atomic.Uint32
}

// waitCount masks the count in a waiters word. Waiters are bounded by the
// table sizes (maxRingMembers), far below it.
const waitCount = 1<<16 - 1

// nextGen returns waiters word v reset: count zero, generation bumped.
func nextGen(v uint32) uint32 { return (v>>16 + 1) << 16 }

// enter counts a waiter in and returns the waiters word it left, for
// unwait.
func (q ringQueue) enter() uint32 { return q.waiters.Add(1) }

// wake wakes every sleeper if the count says there is one, and reports
// whether it made the system call.
func (q ringQueue) wake() bool {
	for {
		v := q.waiters.Load()
		if v&waitCount == 0 {
			return false
		}
		if q.waiters.CompareAndSwap(v, nextGen(v)) {
			break
		}
	}
	q.word.Add(1)
	futexWakeWord(q.word, wakeAll)
	return true
}

// unwait takes back the count of a waiter that found the ring ready before
// sleeping, so that the other side makes no wake-up call for it; entered
// is what enter returned. Once a waker has reset the count (a new
// generation), the count is no longer this waiter's: it is left alone. A
// waiter that sleeps keeps its count; the waker resets it.
func (q ringQueue) unwait(entered uint32) {
	for {
		v := q.waiters.Load()
		if v>>16 != entered>>16 || v&waitCount == 0 || q.waiters.CompareAndSwap(v, v-1) {
			return
		}
	}
}

func (q ringQueue) wakeAll() {
	for {
		v := q.waiters.Load()
		if q.waiters.CompareAndSwap(v, nextGen(v)) {
			break
		}
	}
	q.word.Add(1)
	futexWakeWord(q.word, wakeAll)
}

// RingCounters count what one producer or consumer did.
type RingCounters struct {
	Messages   uint64 // messages sent or received
	Batches    uint64 // claims or publishes: index or slot-range hand-overs
	FutexWaits uint64 // FUTEX_WAIT system calls
	FutexWakes uint64 // FUTEX_WAKE system calls
	Tombstones uint64 // consumer: messages skipped because their producer died
}

// RingOptions tune a producer or consumer. Zero values take defaults.
type RingOptions struct {
	// Spin is how many times a waiter polls the ring before sleeping on
	// the futex; zero means 200 (under a µs; longer spins measured slower
	// round trips on a loaded 2-CPU VM). Negative means never sleep: poll until
	// the ring is ready (still noticing a done context and dead peers
	// every 20 ms), for the lowest latency at the cost of a busy CPU.
	Spin int

	// Batch (SPSC producer) is how many messages Write leaves pending at
	// most; zero means 32. A written message reaches the consumer when
	// its batch is published, by one store of tail (and a sleeping
	// consumer is woken then): by Send, Flush, the end of SendBatch,
	// every Batch messages, or when the ring is full.
	Batch int
}

func (o RingOptions) withDefaults() RingOptions {
	if o.Spin == 0 {
		o.Spin = 200
	}
	if o.Batch <= 0 {
		o.Batch = 32
	}
	return o
}

// block waits until ready holds, ctx is done or check fails. check(slow)
// runs before every sleep; slow is true once per wait slice, for the costly
// look at /proc for dead peers.
func block(ctx context.Context, q ringQueue, spin int, c *RingCounters, ready func() bool, check func(slow bool) error) error {
	for range spin {
		if ready() {
			return nil
		}
	}
	last := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		slow := now.Sub(last) >= waitSlice
		if slow {
			last = now
		}
		if err := check(slow); err != nil {
			return err
		}
		if ready() {
			return nil
		}
		if spin < 0 {
			for range 1 << 12 {
				if ready() {
					return nil
				}
			}
			continue
		}
		in := q.enter()
		e := q.word.Load()
		if ready() {
			q.unwait(in)
			return nil
		}
		futexWaitWord(q.word, e, slice(ctx))
		c.FutexWaits++
		if ready() {
			return nil
		}
	}
}
