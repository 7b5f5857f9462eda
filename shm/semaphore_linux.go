package shm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"
)

// ErrSemaphoreOverflow is returned by [Semaphore.Post] when the count is
// already at its largest, 2^32-1, and by a robust semaphore's Post from a
// process that holds no permit: either way the Post would make up a count
// that nobody took.
var ErrSemaphoreOverflow = errors.New("semaphore count would overflow")

// A Semaphore is a counter in shared memory that Wait decrements, waiting
// while it is zero, and Post increments. Its zero value counts zero. A
// second word counts the sleepers, so that Post makes a system call only
// when someone sleeps; a process killed while it sleeps stays counted,
// which costs later Posts a useless FUTEX_WAKE and nothing else.
//
// A robust semaphore, made with [MakeRobustSemaphore], holds a fixed
// number of permits and records which process holds each, pid and start
// time in one word per permit. Its Post gives back a permit the calling
// process holds. A waiter that finds no free permit but one held by a dead
// process takes that permit over and gets an *[OwnerDeadError] naming the
// dead process, holding the permit, as a Mutex does: a process killed
// while it holds a permit never leaves the others waiting forever.
type Semaphore struct {
	count   *atomic.Uint32 // the count; for a robust one, a generation bumped by Post
	waiters *atomic.Uint32
	slots   []atomic.Uint64 // robust only: the ident holding each permit, 0 if free
	ns      *atomic.Uint32  // robust only: pid namespace of its users, see noteNS
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

// The robust semaphore's header: generation, waiters, magic, permits, pid
// namespace, unused; then one uint64 per permit.
const (
	robustSemHeader = 24
	robustSemMagic  = 0x6d657372 // "rsem"
	maxPermits      = 1 << 16
)

// RobustSemaphoreSize returns the bytes a robust semaphore of permits
// permits takes.
func RobustSemaphoreSize(permits int) int { return robustSemHeader + 8*permits }

// MakeRobustSemaphore makes a robust semaphore with permits permits, all
// free, in mem at byte offset off (8-byte aligned). It takes
// RobustSemaphoreSize(permits) bytes. Call it before any process uses it.
func MakeRobustSemaphore(mem []byte, off, permits int) (*Semaphore, error) {
	if permits < 1 || permits > maxPermits {
		return nil, fmt.Errorf("make robust semaphore: %d permits, want 1 to %d", permits, maxPermits)
	}
	p, err := alignedAt(mem, off, RobustSemaphoreSize(permits), "robust semaphore")
	if err != nil {
		return nil, err
	}
	w := unsafe.Slice((*atomic.Uint32)(p), 6)
	s := &Semaphore{count: &w[0], waiters: &w[1], ns: &w[4],
		slots: unsafe.Slice((*atomic.Uint64)(unsafe.Add(p, robustSemHeader)), permits)}
	for i := range s.slots {
		s.slots[i].Store(0)
	}
	w[0].Store(0)
	w[1].Store(0)
	w[4].Store(0)
	w[5].Store(0)
	w[3].Store(uint32(permits))
	w[2].Store(robustSemMagic)
	return s, nil
}

// RobustSemaphoreAt returns the robust semaphore made at off by
// MakeRobustSemaphore, perhaps by another process. It checks the header
// and that mem holds every permit it announces.
func RobustSemaphoreAt(mem []byte, off int) (*Semaphore, error) {
	p, err := alignedAt(mem, off, robustSemHeader, "robust semaphore")
	if err != nil {
		return nil, err
	}
	w := unsafe.Slice((*atomic.Uint32)(p), 6)
	if m := w[2].Load(); m != robustSemMagic {
		return nil, &MismatchError{What: fmt.Sprintf("robust semaphore magic at offset %d", off),
			Want: fmt.Sprintf("%#x", robustSemMagic), Got: fmt.Sprintf("%#x", m)}
	}
	n := int(w[3].Load())
	if n < 1 || n > maxPermits {
		return nil, &MismatchError{What: "robust semaphore permits", Want: fmt.Sprintf("1 to %d", maxPermits), Got: fmt.Sprint(n)}
	}
	if _, err := alignedAt(mem, off, RobustSemaphoreSize(n), "robust semaphore"); err != nil {
		return nil, err
	}
	return &Semaphore{count: &w[0], waiters: &w[1], ns: &w[4],
		slots: unsafe.Slice((*atomic.Uint64)(unsafe.Add(p, robustSemHeader)), n)}, nil
}

// Post increments the count and wakes one waiter if any sleeps. It fails
// with ErrSemaphoreOverflow, changing nothing, if the count is already
// 2^32-1. A robust semaphore's Post gives back a permit this process
// holds, and fails with ErrSemaphoreOverflow if it holds none.
func (s *Semaphore) Post() error {
	if s.slots != nil {
		return s.release()
	}
	for {
		c := s.count.Load()
		if c == math.MaxUint32 {
			return fmt.Errorf("post shared semaphore: %w", ErrSemaphoreOverflow)
		}
		if s.count.CompareAndSwap(c, c+1) {
			break
		}
	}
	if s.waiters.Load() != 0 {
		futexWakeWord(s.count, 1)
	}
	return nil
}

// TryWait decrements the count if it is above zero and reports whether it
// did. On a robust semaphore it takes a free permit if there is one.
func (s *Semaphore) TryWait() bool {
	if s.slots != nil {
		return s.claim(myIdent())
	}
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
// On a robust semaphore it takes a permit; if none is free but a dead
// process holds one, it takes that one and returns an *[OwnerDeadError]
// naming the dead process, with the permit held.
func (s *Semaphore) Wait(ctx context.Context) error {
	if s.slots != nil {
		return s.waitRobust(ctx)
	}
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

// Value returns the count; for a robust semaphore, the free permits.
func (s *Semaphore) Value() int {
	if s.slots != nil {
		n := 0
		for i := range s.slots {
			if s.slots[i].Load() == 0 {
				n++
			}
		}
		return n
	}
	return int(s.count.Load())
}

// Holders returns the pids holding a robust semaphore's permits, one entry
// per permit held, or nil for a plain semaphore.
func (s *Semaphore) Holders() []int {
	var pids []int
	for i := range s.slots {
		if id := ident(s.slots[i].Load()); id != 0 {
			pids = append(pids, int(id.pid()))
		}
	}
	return pids
}

// claim takes a free permit for me: one compare-and-swap on its slot, so a
// permit is held by exactly the process its slot names, with no window in
// which a process holds a permit no slot records.
func (s *Semaphore) claim(me ident) bool {
	noteNS(s.ns)
	for i := range s.slots {
		if s.slots[i].Load() == 0 && s.slots[i].CompareAndSwap(0, uint64(me)) {
			return true
		}
	}
	return false
}

func (s *Semaphore) release() error {
	me := uint64(myIdent())
	for i := range s.slots {
		if s.slots[i].Load() == me && s.slots[i].CompareAndSwap(me, 0) {
			s.count.Add(1)
			if s.waiters.Load() != 0 {
				futexWakeWord(s.count, 1)
			}
			return nil
		}
	}
	return fmt.Errorf("post shared semaphore: this process holds no permit: %w", ErrSemaphoreOverflow)
}

func (s *Semaphore) waitRobust(ctx context.Context) error {
	me := myIdent()
	checked := time.Now()
	watches := newWatchSet(s.count)
	defer watches.stop()
	for {
		// Read the generation before looking for a permit: a Post after
		// the look changes it, and FUTEX_WAIT then returns at once.
		g := s.count.Load()
		if s.claim(me) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait on shared semaphore: %w", err)
		}
		if watches.died() || time.Since(checked) >= waitSlice {
			checked = time.Now()
			if pid, ok := s.takeOver(me, watches); ok {
				return &OwnerDeadError{PID: pid, Lock: "semaphore"}
			}
		}
		s.waiters.Add(1)
		futexWaitWord(s.count, g, slice(ctx))
		s.waiters.Add(^uint32(0))
	}
}

// takeOver moves a permit held by a dead process to me. Holders found
// alive are watched, so that a death wakes this waiter at once.
func (s *Semaphore) takeOver(me ident, watches *watchSet) (int, bool) {
	for i := range s.slots {
		id := ident(s.slots[i].Load())
		if id == 0 || id == me {
			continue
		}
		if !ownerDead(s.ns, id) {
			watches.watch(id)
			continue
		}
		if s.slots[i].CompareAndSwap(uint64(id), uint64(me)) {
			return int(id.pid()), true
		}
	}
	return 0, false
}
