package benchlab

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"ipcplay/shm"
)

// futexEnd hands a token over shared memory and wakes the other side
// through a futex word (shm.Event): out is set by this side, in by the
// other; the token travels in the word next to it.
type futexEnd struct {
	ctx          context.Context
	in, out      *shm.Event
	inTok, outTk *atomic.Uint32
}

// futexLayout: two events and two token words, 64 bytes apart so that
// each sits on its own cache line.
const futexRegion = 4096

func futexEnds(ctx context.Context, mem []byte, parent bool) (*futexEnd, error) {
	var ev [2]*shm.Event
	var tok [2]*atomic.Uint32
	for i := range 2 {
		e, err := shm.EventAt(mem, 128*i)
		if err != nil {
			return nil, err
		}
		ev[i] = e
		tok[i] = (*atomic.Uint32)(unsafe.Pointer(&mem[128*i+64]))
	}
	if parent {
		return &futexEnd{ctx: ctx, out: ev[0], in: ev[1], outTk: tok[0], inTok: tok[1]}, nil
	}
	return &futexEnd{ctx: ctx, out: ev[1], in: ev[0], outTk: tok[1], inTok: tok[0]}, nil
}

func (e *futexEnd) Send(b []byte) error {
	e.outTk.Store(uint32(b[0]))
	e.out.Set()
	return nil
}

func (e *futexEnd) Recv(b []byte) error {
	if err := e.in.Wait(e.ctx); err != nil {
		return err
	}
	e.in.Clear()
	b[0] = byte(e.inTok.Load())
	return nil
}

func (e *futexEnd) Close() error { return nil }

// sigNum is the real-time signal the signal cells use: SIGRTMIN+8, clear
// of the two glibc keeps for itself.
const sigNum = 34 + 8

// signalEnd sends its token as the value of a queued real-time signal to
// one thread of the other process, and waits for the other side's with
// rt_sigtimedwait. The signal is thread-directed (rt_tgsigqueueinfo, the
// thread form of sigqueue(3)) and blocked on both waiting threads: a Go
// process has many threads, and a process-directed signal would be handed
// to whichever thread does not block it, where the Go runtime would take
// it. Both sides lock their goroutine to its thread for the cell.
type signalEnd struct {
	ctx       context.Context
	pid, tid  int // the other side's
	set, prev unix.Sigset_t
}

// siginfo is the kernel's siginfo_t for SI_QUEUE on 64-bit Linux: signo,
// errno, code, padding, then pid, uid and the sigval.
type siginfo struct {
	signo, errno, code, _ int32
	pid                   int32
	uid                   uint32
	value                 uint64
	_                     [96]byte
}

const siQueue = -1 // SI_QUEUE

// blockSignal blocks sigNum on the calling thread, which must be locked.
func blockSignal() (*signalEnd, error) {
	e := new(signalEnd)
	e.set.Val[(sigNum-1)/64] |= 1 << ((sigNum - 1) % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &e.set, &e.prev); err != nil {
		return nil, os.NewSyscallError("rt_sigprocmask", err)
	}
	return e, nil
}

func (e *signalEnd) Send(b []byte) error {
	info := siginfo{signo: sigNum, code: siQueue, pid: int32(os.Getpid()), uid: uint32(os.Getuid()), value: uint64(b[0])}
	for {
		_, _, errno := unix.Syscall6(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(e.pid), uintptr(e.tid), sigNum, uintptr(unsafe.Pointer(&info)), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("rt_tgsigqueueinfo", errno)
		}
		return nil
	}
}

func (e *signalEnd) Recv(b []byte) error {
	var info siginfo
	ts := unix.Timespec{Nsec: 100e6}
	for {
		_, _, errno := unix.Syscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&e.set)), uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&ts)), 8, 0, 0)
		switch errno {
		case 0:
			b[0] = byte(info.value)
			return nil
		case unix.EAGAIN, unix.EINTR:
			if err := e.ctx.Err(); err != nil {
				return fmt.Errorf("wait for signal: %w", err)
			}
			continue
		}
		return os.NewSyscallError("rt_sigtimedwait", errno)
	}
}

// Close unblocks the signal on the thread again.
func (e *signalEnd) Close() error {
	return unix.PthreadSigmask(unix.SIG_SETMASK, &e.prev, nil)
}

// tidExchange writes this thread's id on fd and reads the other side's.
func tidExchange(fd int) (int, error) {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], uint64(unix.Gettid()))
	s := &streamEnd{r: fd, w: fd}
	if err := s.Send(b[:]); err != nil {
		return 0, fmt.Errorf("send thread id: %w", err)
	}
	if err := s.Recv(b[:]); err != nil {
		return 0, fmt.Errorf("receive thread id: %w", err)
	}
	return int(binary.NativeEndian.Uint64(b[:])), nil
}
