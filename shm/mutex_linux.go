package shm

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// A Mutex is a mutual exclusion lock in memory shared between processes,
// built on futex(2). Its 64-bit lock word holds the owner, pid and start
// time together (0 when unlocked), and a bit that says someone sleeps on
// it; the futex word is its low half. A second word records the pid
// namespace of the processes using it. Locking an unlocked mutex is one
// compare-and-swap, unlocking one without sleepers one swap: neither makes
// a system call.
//
// The lock belongs to a process, not a goroutine: any goroutine of the
// owning process may unlock it, and a waiter that finds the owning process
// gone (exited, killed, or a zombie) takes the lock over and reports an
// *[OwnerDeadError]. A process it cannot see (hidden by /proc's hidepid=,
// or in another pid namespace) is never taken for dead. A Mutex is safe
// for concurrent use by goroutines and processes.
type Mutex struct {
	word *atomic.Uint64 // owner ident, waitersBit in its low half
	low  *atomic.Uint32 // the futex word: word's low half
	ns   *atomic.Uint32 // pid namespace of its users, see noteNS
}

const waitersBit = 1 << 31 // pids are below 2^22 on Linux

// MutexAt returns the mutex stored in mem at byte offset off, which must be
// 8-byte aligned. It takes MutexSize bytes.
func MutexAt(mem []byte, off int) (*Mutex, error) {
	p, err := alignedAt(mem, off, MutexSize, "mutex")
	if err != nil {
		return nil, err
	}
	return mutexAt(p), nil
}

func mutexAt(p unsafe.Pointer) *Mutex {
	w := (*atomic.Uint64)(p)
	return &Mutex{word: w, low: lowHalf(w), ns: (*atomic.Uint32)(unsafe.Add(p, 8))}
}

// Lock locks m, waiting until it is free, the owner dies, or ctx is done.
// It returns nil with the lock held; an *[OwnerDeadError] with the lock
// held; or, without the lock, an error wrapping ctx's error.
func (m *Mutex) Lock(ctx context.Context) error {
	me := myIdent()
	noteNS(m.ns)
	if m.word.CompareAndSwap(0, uint64(me)) {
		return nil
	}
	return m.lockSlow(ctx, me)
}

// TryLock locks m if it is free and reports whether it did. It never waits
// and never takes over from a dead owner.
func (m *Mutex) TryLock() bool {
	noteNS(m.ns)
	return m.word.CompareAndSwap(0, uint64(myIdent()))
}

func (m *Mutex) lockSlow(ctx context.Context, me ident) error {
	checked := time.Now()
	watches := newWatchSet(m.low)
	defer watches.stop()
	for {
		v := m.word.Load()
		if v == 0 {
			// Others may still sleep: keep the bit so Unlock wakes one.
			if m.word.CompareAndSwap(0, uint64(me)|waitersBit) {
				return nil
			}
			continue
		}
		if v&waitersBit == 0 {
			if !m.word.CompareAndSwap(v, v|waitersBit) {
				continue
			}
			v |= waitersBit
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lock shared mutex: %w", err)
		}
		futexWaitWord(m.low, uint32(v), slice(ctx))
		// Look at the owner once per slice spent waiting, not on every
		// wake-up: a busy lock is woken far more often than owners die;
		// or at once when a watched owner exited.
		if !watches.died() && time.Since(checked) < waitSlice {
			continue
		}
		checked = time.Now()
		if pid, ok := m.takeOver(me, watches); ok {
			return &OwnerDeadError{PID: pid}
		}
	}
}

// takeOver takes m from its owner if that process is certainly dead, and
// returns the dead owner's pid. The owner is named by the lock word alone,
// pid and start time in one atomic load, and the compare-and-swap takes
// the lock only if that very word is still there.
//
// An owner found alive is watched (see deathWatch), so that its death
// wakes this waiter at once.
func (m *Mutex) takeOver(me ident, watches *watchSet) (int, bool) {
	v := m.word.Load()
	owner := ident(v &^ waitersBit)
	if v == 0 || owner == me {
		return 0, false // free, or held by another goroutine of ours
	}
	if !ownerDead(m.ns, owner) {
		watches.watch(owner)
		return 0, false
	}
	if !m.word.CompareAndSwap(v, uint64(me)|waitersBit) {
		return 0, false
	}
	return int(owner.pid()), true
}

// Unlock unlocks m and wakes one waiter if any sleeps. Unlocking an
// unlocked Mutex does nothing.
func (m *Mutex) Unlock() {
	if m.word.Swap(0)&waitersBit != 0 {
		futexWakeWord(m.low, 1)
	}
}

// Owner returns the pid of the process holding m, or 0 if it is unlocked.
func (m *Mutex) Owner() int { return int(ident(m.word.Load()).pid()) }

// heldByMe reports whether this process holds m.
func (m *Mutex) heldByMe() bool { return ident(m.word.Load()&^waitersBit) == myIdent() }
