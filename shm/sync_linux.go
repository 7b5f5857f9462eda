package shm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// The sizes, in bytes, that the synchronization primitives take in memory.
// Each must start at an 8-byte aligned offset. Memory of all zeros is an
// unlocked Mutex, a Semaphore at zero and a clear Event; a Barrier must be
// made with MakeBarrier.
const (
	MutexSize     = 16
	SemaphoreSize = 8
	EventSize     = 8
	BarrierSize   = 16
)

func alignedAt(mem []byte, off, size int, what string) (unsafe.Pointer, error) {
	p, err := wordAt(mem, off, size)
	if err != nil {
		return nil, fmt.Errorf("%s view: %w", what, err)
	}
	if uintptr(p)%8 != 0 {
		return nil, fmt.Errorf("%s view: offset %d is not 8-byte aligned", what, off)
	}
	return p, nil
}

// ErrOwnerDead is matched by errors.Is for an *[OwnerDeadError].
var ErrOwnerDead = errors.New("previous owner of the lock died holding it")

// OwnerDeadError is returned by [Mutex.Lock] when the process that held the
// mutex died without unlocking it. The caller holds the lock when it gets
// this error, as with a robust pthread mutex's EOWNERDEAD: the data the lock
// guards may be half updated, so the caller repairs or checks it, then
// unlocks as usual.
type OwnerDeadError struct {
	PID int // the process that died holding the lock
}

func (e *OwnerDeadError) Error() string {
	return fmt.Sprintf("shared mutex: previous owner pid %d died holding it; the lock is now ours and the data it guards may be inconsistent", e.PID)
}

// Is makes errors.Is(err, ErrOwnerDead) hold.
func (e *OwnerDeadError) Is(target error) bool { return target == ErrOwnerDead }

// A Mutex is a mutual exclusion lock in memory shared between processes,
// built on futex(2). Its 32-bit lock word holds the pid of the process that
// owns it (0 when unlocked) and a bit that says someone sleeps on it; a
// second word records the owner's pid and start time. Locking an unlocked
// mutex is one compare-and-swap, unlocking one without sleepers one swap:
// neither makes a system call.
//
// The lock belongs to a process, not a goroutine: any goroutine of the
// owning process may unlock it, and a waiter that finds the owning process
// gone (exited, killed, or a zombie) takes the lock over and reports an
// *[OwnerDeadError]. A Mutex is safe for concurrent use by goroutines and
// processes.
type Mutex struct {
	state *atomic.Uint32
	owner *atomic.Uint64 // pid<<32 | low 32 bits of its start time
}

const waitersBit = 1 << 31 // pids are below 2^22 on Linux

// MutexAt returns the mutex stored in mem at byte offset off, which must be
// 8-byte aligned. It takes MutexSize bytes.
func MutexAt(mem []byte, off int) (*Mutex, error) {
	p, err := alignedAt(mem, off, MutexSize, "mutex")
	if err != nil {
		return nil, err
	}
	return &Mutex{state: (*atomic.Uint32)(p), owner: (*atomic.Uint64)(unsafe.Add(p, 8))}, nil
}

// Lock locks m, waiting until it is free, the owner dies, or ctx is done.
// It returns nil with the lock held; an *[OwnerDeadError] with the lock
// held; or, without the lock, an error wrapping ctx's error.
func (m *Mutex) Lock(ctx context.Context) error {
	me := self()
	if m.state.CompareAndSwap(0, uint32(me>>32)) {
		m.record(me)
		return nil
	}
	return m.lockSlow(ctx, me)
}

// record notes the owner's identity once it holds the lock. The store is
// skipped when the record is already ours, as it is when one process locks
// over and over: that keeps the uncontended path at two atomic writes.
func (m *Mutex) record(me uint64) {
	if m.owner.Load() != me {
		m.owner.Store(me)
	}
}

// TryLock locks m if it is free and reports whether it did. It never waits
// and never takes over from a dead owner.
func (m *Mutex) TryLock() bool {
	me := self()
	if m.state.CompareAndSwap(0, uint32(me>>32)) {
		m.record(me)
		return true
	}
	return false
}

func (m *Mutex) lockSlow(ctx context.Context, me uint64) error {
	mypid := uint32(me >> 32)
	checked := time.Now()
	for {
		v := m.state.Load()
		if v == 0 {
			// Others may still sleep: keep the bit so Unlock wakes one.
			if m.state.CompareAndSwap(0, mypid|waitersBit) {
				m.record(me)
				return nil
			}
			continue
		}
		if v&waitersBit == 0 {
			if !m.state.CompareAndSwap(v, v|waitersBit) {
				continue
			}
			v |= waitersBit
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lock shared mutex: %w", err)
		}
		futexWaitWord(m.state, v, slice(ctx))
		// Look at the owner once per slice spent waiting, not on every
		// wake-up: a busy lock is woken far more often than owners die.
		if time.Since(checked) < waitSlice {
			continue
		}
		checked = time.Now()
		v = m.state.Load()
		pid := v &^ waitersBit
		if v == 0 || pid == mypid {
			continue
		}
		var start uint32
		if rec := m.owner.Load(); uint32(rec>>32) == pid {
			start = uint32(rec)
		}
		if !alive(pid, start) && m.state.CompareAndSwap(v, mypid|waitersBit) {
			m.record(me)
			return &OwnerDeadError{PID: int(pid)}
		}
	}
}

// Unlock unlocks m and wakes one waiter if any sleeps. Unlocking an
// unlocked Mutex does nothing.
func (m *Mutex) Unlock() {
	if m.state.Swap(0)&waitersBit != 0 {
		futexWakeWord(m.state, 1)
	}
}

// Owner returns the pid of the process holding m, or 0 if it is unlocked.
func (m *Mutex) Owner() int { return int(m.state.Load() &^ waitersBit) }

// A Semaphore is a counter in shared memory that Wait decrements, waiting
// while it is zero, and Post increments. Its zero value counts zero. A
// second word counts the sleepers, so that Post makes a system call only
// when someone sleeps; a process killed while it sleeps stays counted,
// which costs later Posts a useless FUTEX_WAKE and nothing else.
type Semaphore struct {
	count   *atomic.Uint32
	waiters *atomic.Uint32
}

// SemaphoreAt returns the semaphore stored in mem at byte offset off, which
// must be 8-byte aligned. It takes SemaphoreSize bytes.
func SemaphoreAt(mem []byte, off int) (*Semaphore, error) {
	p, err := alignedAt(mem, off, SemaphoreSize, "semaphore")
	if err != nil {
		return nil, err
	}
	return &Semaphore{count: (*atomic.Uint32)(p), waiters: (*atomic.Uint32)(unsafe.Add(p, 4))}, nil
}

// Post increments the count and wakes one waiter if any sleeps.
func (s *Semaphore) Post() {
	s.count.Add(1)
	if s.waiters.Load() != 0 {
		futexWakeWord(s.count, 1)
	}
}

// TryWait decrements the count if it is above zero and reports whether it
// did.
func (s *Semaphore) TryWait() bool {
	for {
		c := s.count.Load()
		if c == 0 {
			return false
		}
		if s.count.CompareAndSwap(c, c-1) {
			return true
		}
	}
}

// Wait decrements the count, waiting while it is zero, until ctx is done.
func (s *Semaphore) Wait(ctx context.Context) error {
	for {
		if s.TryWait() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait on shared semaphore: %w", err)
		}
		// A Post between the TryWait and here makes the count non-zero,
		// so FUTEX_WAIT returns at once instead of missing it.
		s.waiters.Add(1)
		futexWaitWord(s.count, 0, slice(ctx))
		s.waiters.Add(^uint32(0))
	}
}

// Value returns the count.
func (s *Semaphore) Value() int { return int(s.count.Load()) }

// An Event is a flag in shared memory that processes wait for: Set wakes
// every waiter, and the flag stays set until Clear. Its zero value is clear.
type Event struct {
	w *atomic.Uint32
}

// EventAt returns the event stored in mem at byte offset off, which must be
// 8-byte aligned. It takes EventSize bytes.
func EventAt(mem []byte, off int) (*Event, error) {
	p, err := alignedAt(mem, off, EventSize, "event")
	if err != nil {
		return nil, err
	}
	return &Event{w: (*atomic.Uint32)(p)}, nil
}

// Set sets the event and wakes every waiter.
func (e *Event) Set() {
	if e.w.Swap(1) == 0 {
		futexWakeWord(e.w, wakeAll)
	}
}

// Clear clears the event.
func (e *Event) Clear() { e.w.Store(0) }

// IsSet reports whether the event is set.
func (e *Event) IsSet() bool { return e.w.Load() != 0 }

// Wait waits until the event is set or ctx is done.
func (e *Event) Wait(ctx context.Context) error {
	for e.w.Load() == 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for shared event: %w", err)
		}
		futexWaitWord(e.w, 0, slice(ctx))
	}
	return nil
}

// ErrBrokenBarrier is returned by [Barrier.Wait] once a wait on the barrier
// has failed: the parties can no longer all meet, until Reset.
var ErrBrokenBarrier = errors.New("barrier is broken")

// A Barrier makes a fixed number of parties, processes or goroutines, wait
// for each other: each calls Wait, and all are released together when the
// last one arrives. It can be used again for the next round. A Wait whose
// context is done breaks the barrier, for it and for everyone waiting or
// arriving later, as Python's threading.Barrier does on a timeout.
type Barrier struct {
	count, gen, broken, parties *atomic.Uint32
}

// MakeBarrier makes a barrier for parties parties in mem at byte offset
// off, which must be 8-byte aligned. It takes BarrierSize bytes. Call it
// before any party uses the barrier.
func MakeBarrier(mem []byte, off, parties int) (*Barrier, error) {
	if parties < 1 || parties > 1<<30 {
		return nil, fmt.Errorf("make barrier: %d parties", parties)
	}
	b, err := barrierAt(mem, off)
	if err != nil {
		return nil, err
	}
	b.count.Store(0)
	b.gen.Store(0)
	b.broken.Store(0)
	b.parties.Store(uint32(parties))
	return b, nil
}

// BarrierAt returns the barrier made at off by MakeBarrier, perhaps by
// another process.
func BarrierAt(mem []byte, off int) (*Barrier, error) {
	b, err := barrierAt(mem, off)
	if err != nil {
		return nil, err
	}
	if b.parties.Load() == 0 {
		return nil, fmt.Errorf("barrier view: no barrier made at offset %d", off)
	}
	return b, nil
}

func barrierAt(mem []byte, off int) (*Barrier, error) {
	p, err := alignedAt(mem, off, BarrierSize, "barrier")
	if err != nil {
		return nil, err
	}
	w := unsafe.Slice((*atomic.Uint32)(p), 4)
	return &Barrier{count: &w[0], gen: &w[1], broken: &w[2], parties: &w[3]}, nil
}

// Parties returns the number of parties the barrier waits for.
func (b *Barrier) Parties() int { return int(b.parties.Load()) }

// Wait waits until all parties have called Wait, and returns the order in
// which this one arrived, 0 to Parties-1: exactly one party gets each
// number in a round. It fails with an error matching ErrBrokenBarrier if
// the barrier is broken, or breaks while waiting; if ctx is done, the error
// also wraps ctx's error.
func (b *Barrier) Wait(ctx context.Context) (int, error) {
	gen := b.gen.Load()
	if b.broken.Load() != 0 {
		return 0, fmt.Errorf("barrier wait: %w", ErrBrokenBarrier)
	}
	n := b.count.Add(1)
	if n == b.parties.Load() {
		b.count.Store(0)
		b.gen.Add(1)
		futexWakeWord(b.gen, wakeAll)
		return int(n - 1), nil
	}
	for b.gen.Load() == gen {
		if b.broken.Load() != 0 {
			return 0, fmt.Errorf("barrier wait: %w", ErrBrokenBarrier)
		}
		if err := ctx.Err(); err != nil {
			b.broken.Store(1)
			futexWakeWord(b.gen, wakeAll)
			return 0, fmt.Errorf("barrier wait: %w: %w", ErrBrokenBarrier, err)
		}
		futexWaitWord(b.gen, gen, slice(ctx))
	}
	return int(n - 1), nil
}

// Reset mends a broken barrier for a new round. No party may be waiting.
func (b *Barrier) Reset() {
	b.count.Store(0)
	b.broken.Store(0)
}

// Mutex returns the mutex stored at byte offset off of the region.
func (r *Region) Mutex(off int) (*Mutex, error) { return MutexAt(r.mem, off) }

// Semaphore returns the semaphore stored at byte offset off of the region.
func (r *Region) Semaphore(off int) (*Semaphore, error) { return SemaphoreAt(r.mem, off) }

// Event returns the event stored at byte offset off of the region.
func (r *Region) Event(off int) (*Event, error) { return EventAt(r.mem, off) }
