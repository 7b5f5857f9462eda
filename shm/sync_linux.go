package shm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// The sizes, in bytes, that the synchronization primitives take in memory.
// Each must start at an 8-byte aligned offset. Memory of all zeros is an
// unlocked Mutex or RLock, a Semaphore at zero, a clear Event and a Cond
// nobody waits on; a Barrier must be made with MakeBarrier, and the robust
// Semaphore and Barrier that name a dead party (see [RobustSemaphoreSize]
// and [RobustBarrierSize]) with their Make functions.
const (
	MutexSize     = 16
	SemaphoreSize = 8
	EventSize     = 8
	BarrierSize   = 16
	RLockSize     = 24
	CondSize      = 8
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

// OwnerDeadError is returned by [Mutex.Lock], [RLock.Lock] and a robust
// [Semaphore]'s Wait when the process that held the lock (or the permit)
// died without giving it back. The caller holds it when it gets this
// error, as with a robust pthread mutex's EOWNERDEAD: the data the lock
// guards may be half updated, so the caller repairs or checks it, then
// unlocks as usual.
type OwnerDeadError struct {
	PID  int    // the process that died holding the lock
	Lock string // what it held: "mutex" when empty, "recursive mutex", "semaphore"
}

func (e *OwnerDeadError) Error() string {
	lock := e.Lock
	if lock == "" {
		lock = "mutex"
	}
	return fmt.Sprintf("shared %s: previous owner pid %d died holding it; the lock is now ours and the data it guards may be inconsistent", lock, e.PID)
}

// Is makes errors.Is(err, ErrOwnerDead) hold.
func (e *OwnerDeadError) Is(target error) bool { return target == ErrOwnerDead }

// ErrPartyDead is matched by errors.Is for a *[PartyDeadError].
var ErrPartyDead = errors.New("a party of a shared primitive died")

// PartyDeadError is returned by a robust [Barrier]'s Wait when a process
// that joined the barrier died: the parties can no longer all meet. The
// barrier stays broken, for every party, until [Barrier.Reset]. It also
// matches ErrBrokenBarrier.
type PartyDeadError struct {
	PID       int    // the process that died
	Primitive string // "barrier"
}

func (e *PartyDeadError) Error() string {
	return fmt.Sprintf("shared %s: party pid %d died", e.Primitive, e.PID)
}

// Is makes errors.Is(err, ErrPartyDead) hold, and errors.Is(err,
// ErrBrokenBarrier) for a barrier.
func (e *PartyDeadError) Is(target error) bool {
	return target == ErrPartyDead || (e.Primitive == "barrier" && target == ErrBrokenBarrier)
}

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

// Mutex returns the mutex stored at byte offset off of the region.
func (r *Region) Mutex(off int) (*Mutex, error) { return MutexAt(r.mem, off) }

// Semaphore returns the semaphore stored at byte offset off of the region.
func (r *Region) Semaphore(off int) (*Semaphore, error) { return SemaphoreAt(r.mem, off) }

// Event returns the event stored at byte offset off of the region.
func (r *Region) Event(off int) (*Event, error) { return EventAt(r.mem, off) }
