package shm

import (
	"context"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// x/sys/unix has the futex system call number but no wrapper and no
// operation constants; these are from linux/futex.h. The shared (not
// _PRIVATE) operations are the point: the word lives in memory that other
// processes map, and the kernel must key waiters by the page, not by this
// process's address space.
const (
	futexWait       = 0 // FUTEX_WAIT
	futexWake       = 1 // FUTEX_WAKE
	futexCmpRequeue = 4 // FUTEX_CMP_REQUEUE
)

// futexCalls counts the futex system calls this process made through the
// wrappers below, for benchmarks that report system calls per operation.
var futexCalls atomic.Uint64

// waitSlice bounds each FUTEX_WAIT, so that a waiter notices a cancelled
// context, a passed deadline or a dead lock owner within that long, even if
// nobody wakes it.
const waitSlice = 20 * time.Millisecond

// wakeAll is the count FUTEX_WAKE takes to wake every waiter.
const wakeAll = 1<<31 - 1

// futexWaitWord sleeps while *w == v, for at most d. It returns early when
// woken, when *w != v already (EAGAIN), on a signal (EINTR) or a timeout;
// callers re-check their condition in every case, so it reports no error.
// Syscall6, not RawSyscall: the Go scheduler must know this thread blocks.
func futexWaitWord(w *atomic.Uint32, v uint32, d time.Duration) {
	futexCalls.Add(1)
	ts := unix.NsecToTimespec(d.Nanoseconds())
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWait, uintptr(v),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWakeWord wakes up to n processes or threads sleeping on w.
func futexWakeWord(w *atomic.Uint32, n int) {
	futexCalls.Add(1)
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWake, uintptr(n), 0, 0, 0)
}

// slice returns how long the next FUTEX_WAIT may sleep: waitSlice, or less
// when ctx's deadline is nearer.
func slice(ctx context.Context) time.Duration {
	d := waitSlice
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			d = max(left, time.Microsecond)
		}
	}
	return d
}

// futexRequeueWord wakes up to n sleepers on w and moves the others, up to
// move of them, to sleep on to instead, if *w still holds v; otherwise it
// does nothing and reports false (EAGAIN), and the caller wakes all.
func futexRequeueWord(w *atomic.Uint32, v uint32, n, move int, to *atomic.Uint32) bool {
	futexCalls.Add(1)
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexCmpRequeue, uintptr(n),
		uintptr(move), uintptr(unsafe.Pointer(to)), uintptr(v))
	return errno == 0
}

// lowOffset is the byte offset of the low 32 bits within a uint64 in
// memory: 0 on little-endian machines (amd64, arm64), 4 on big-endian ones.
// A 64-bit lock word keeps its futex word in those low bits.
var lowOffset = func() uintptr {
	x := uint64(1)
	if *(*byte)(unsafe.Pointer(&x)) == 1 {
		return 0
	}
	return 4
}()

// lowHalf returns the low 32 bits of the 64-bit word at p as a word of its
// own, for FUTEX_WAIT and FUTEX_WAKE, which take 32-bit words.
func lowHalf(p *atomic.Uint64) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Add(unsafe.Pointer(p), lowOffset))
}
