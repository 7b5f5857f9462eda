package shm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
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
	futexWait = 0 // FUTEX_WAIT
	futexWake = 1 // FUTEX_WAKE
)

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
	ts := unix.NsecToTimespec(d.Nanoseconds())
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWait, uintptr(v),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWakeWord wakes up to n processes or threads sleeping on w.
func futexWakeWord(w *atomic.Uint32, n int) {
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

// selfRec identifies this process in a lock: its pid in the high 32 bits,
// and the low 32 bits of its start time in clock ticks since boot (field 22
// of /proc/PID/stat), which tells a live process apart from a new one that
// reused a dead owner's pid. It is read on every Lock, so it is a plain
// atomic word rather than a sync.OnceValue; zero means not yet known.
var selfRec atomic.Uint64

func self() uint64 {
	if rec := selfRec.Load(); rec != 0 {
		return rec
	}
	pid := os.Getpid()
	st, _ := readStat(pid)
	rec := uint64(pid)<<32 | uint64(st.start)
	selfRec.Store(rec)
	return rec
}

type procStat struct {
	state byte
	start uint32
}

var errNoProcess = errors.New("no such process")

// readStat reads the state and start time of process pid from
// /proc/PID/stat (see proc_pid_stat(5)). The command name, field 2, is in
// parentheses and may itself hold spaces and parentheses, so the fields
// are counted from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return procStat{}, errNoProcess
		}
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat starttime: %w", pid, err)
	}
	return procStat{state: f[0][0], start: uint32(start)}, nil
}

// alive reports whether the process that recorded itself as id still
// runs. A zombie (exited, not yet reaped) is dead: it holds no lock. When
// start is zero the owner did not get to record it, and only the pid is
// checked.
func alive(pid, start uint32) bool {
	st, err := readStat(int(pid))
	if errors.Is(err, errNoProcess) {
		return false
	}
	if err != nil {
		return true // cannot tell; keep waiting
	}
	if st.state == 'Z' || st.state == 'X' || st.state == 'x' {
		return false
	}
	return start == 0 || st.start == start
}
