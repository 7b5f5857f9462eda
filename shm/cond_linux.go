package shm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// A Cond is a condition variable in memory shared between processes, over
// a shared [Mutex]: Python's threading.Condition and Go's sync.Cond across
// processes. Wait unlocks the mutex, sleeps until Signal or Broadcast, and
// locks the mutex again.
//
// Its first word is a sequence number that Signal and Broadcast bump, the
// futex word; a waiter reads it before it unlocks the mutex and sleeps
// only while it is unchanged, so a signal sent between the unlock and the
// sleep is never lost. The second word counts sleepers, so that a signal
// nobody waits for makes no system call. Nothing in a Cond records who
// waits: a waiting process that is killed leaves at most a stale count
// (a useless FUTEX_WAKE later), and never a signal lost on it, since the
// kernel wakes only live sleepers.
//
// As with sync.Cond, Wait may return without a Signal meant for it (every
// waiter wakes at least once per 20 ms slice to look at its context, and
// returns if the sequence moved): callers wait in a loop on their
// condition. A Cond takes CondSize bytes; all zeros is ready to use.
type Cond struct {
	seq     *atomic.Uint32
	waiters *atomic.Uint32
	m       *Mutex

	// requeue makes broadcastRequeue usable: woken waiters relock the
	// mutex as contended, so that each unlock wakes the next sleeper moved
	// onto it. Only BenchmarkCondBroadcast sets it, to measure the choice.
	requeue bool
}

// CondAt returns the condition variable stored in mem at byte offset off,
// which must be 8-byte aligned, used with the mutex m, which all its
// users must share.
func CondAt(mem []byte, off int, m *Mutex) (*Cond, error) {
	if m == nil {
		return nil, errors.New("condition view: nil mutex")
	}
	p, err := alignedAt(mem, off, CondSize, "condition")
	if err != nil {
		return nil, err
	}
	return &Cond{seq: (*atomic.Uint32)(p), waiters: (*atomic.Uint32)(unsafe.Add(p, 4)), m: m}, nil
}

// Wait unlocks the mutex, which the caller holds, waits for a Signal or
// Broadcast or for ctx to be done, and locks the mutex again before it
// returns, in every case: the caller holds the mutex afterwards. It
// returns ctx's error if ctx ended the wait, and an *[OwnerDeadError] if
// the mutex's owner died meanwhile (the caller holds it and repairs what
// it guards).
func (c *Cond) Wait(ctx context.Context) error {
	s := c.seq.Load()
	c.waiters.Add(1)
	c.m.Unlock()
	var werr error
	for c.seq.Load() == s {
		if err := ctx.Err(); err != nil {
			werr = fmt.Errorf("wait on shared condition: %w", err)
			break
		}
		futexWaitWord(c.seq, s, slice(ctx))
	}
	c.waiters.Add(^uint32(0))
	// Relock whatever happened to ctx, as the caller expects to hold the
	// mutex; the wait for it ends, at worst, when its owner dies.
	var err error
	if c.requeue {
		noteNS(c.m.ns)
		err = c.m.lockSlow(context.WithoutCancel(ctx), myIdent())
	} else {
		err = c.m.Lock(context.WithoutCancel(ctx))
	}
	if err != nil {
		return errors.Join(werr, err)
	}
	return werr
}

// Signal wakes one waiter, if any.
func (c *Cond) Signal() {
	c.seq.Add(1)
	if c.waiters.Load() != 0 {
		futexWakeWord(c.seq, 1)
	}
}

// Broadcast wakes every waiter. All of them then contend for the mutex;
// see BenchmarkCondBroadcast for why it wakes them all rather than moving
// them onto the mutex with FUTEX_CMP_REQUEUE.
func (c *Cond) Broadcast() {
	c.seq.Add(1)
	if c.waiters.Load() != 0 {
		futexWakeWord(c.seq, wakeAll)
	}
}

// broadcastRequeue is Broadcast by FUTEX_CMP_REQUEUE: it wakes one waiter
// and moves the others onto the mutex's futex word, where each unlock
// wakes the next, instead of waking them all to fight for the mutex. It
// needs the caller to hold the mutex, and every waiter to have c.requeue
// set; otherwise it wakes all. Kept for BenchmarkCondBroadcast.
func (c *Cond) broadcastRequeue() {
	s := c.seq.Add(1)
	if c.waiters.Load() == 0 {
		return
	}
	if c.m.heldByMe() {
		for {
			v := c.m.word.Load()
			if v&waitersBit != 0 || c.m.word.CompareAndSwap(v, v|waitersBit) {
				break
			}
		}
		if futexRequeueWord(c.seq, s, 1, wakeAll, c.m.low) {
			return
		}
	}
	futexWakeWord(c.seq, wakeAll)
}
