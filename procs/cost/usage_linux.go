package cost

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrExited is returned (wrapped) when a process's usage cannot be read
// because it has exited and been reaped; pass its [os.ProcessState] to
// [Counter.Exited] or use [UsageOf] instead.
var ErrExited = errors.New("process has exited")

// ReadUsage reads the usage of a live process from /proc: CPU time from
// /proc/PID/stat (the whole thread group, in 10 ms ticks) and context
// switches summed over /proc/PID/task/*/status (live threads only: the
// switches of threads that already exited are lost). For this process,
// [SelfUsage] is exact; for a child that has been waited for, [UsageOf].
func ReadUsage(pid int) (Usage, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Usage{}, fmt.Errorf("read usage of pid %d: %w", pid, ErrExited)
		}
		return Usage{}, fmt.Errorf("read usage of pid %d: %w", pid, err)
	}
	var u Usage
	if u.UserNS, u.SysNS, err = parseStat(b); err != nil {
		return Usage{}, fmt.Errorf("read usage of pid %d: %w", pid, err)
	}
	tids, err := tasks(pid)
	if err != nil {
		return Usage{}, fmt.Errorf("read usage of pid %d: %w", pid, err)
	}
	for _, tid := range tids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if err != nil {
			continue // the thread exited since the listing
		}
		vol, invol, err := parseStatusCS(b)
		if err != nil {
			return Usage{}, fmt.Errorf("read usage of pid %d thread %d: %w", pid, tid, err)
		}
		u.VolCS += vol
		u.InvolCS += invol
	}
	return u, nil
}

// SelfUsage returns this process's usage from getrusage(RUSAGE_SELF): all
// threads, live and exited, CPU time in microseconds.
func SelfUsage() (Usage, error) {
	return getrusage(unix.RUSAGE_SELF)
}

// ThreadUsage returns the calling thread's usage from
// getrusage(RUSAGE_THREAD). Lock the goroutine to its thread
// (runtime.LockOSThread) around the window, or the figures belong to
// whichever threads the goroutine ran on.
func ThreadUsage() (Usage, error) {
	return getrusage(unix.RUSAGE_THREAD)
}

// ChildrenUsage returns the summed usage of this process's children that
// have exited and been waited for, from getrusage(RUSAGE_CHILDREN). It grows
// only when a child is reaped, so a snapshot before starting the children
// and one after waiting for them give their total.
func ChildrenUsage() (Usage, error) {
	return getrusage(unix.RUSAGE_CHILDREN)
}

func getrusage(who int) (Usage, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return Usage{}, os.NewSyscallError("getrusage", err)
	}
	return Usage{
		UserNS:  ru.Utime.Nano(),
		SysNS:   ru.Stime.Nano(),
		VolCS:   uint64(ru.Nvcsw),
		InvolCS: uint64(ru.Nivcsw),
	}, nil
}

// UsageOf returns the whole-life usage of a child that has been waited for,
// from the rusage wait4 returned. It reports false if st carries none.
func UsageOf(st *os.ProcessState) (Usage, bool) {
	if st == nil {
		return Usage{}, false
	}
	ru, ok := st.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return Usage{}, false
	}
	return Usage{
		UserNS:  ru.Utime.Nano(),
		SysNS:   ru.Stime.Nano(),
		VolCS:   uint64(ru.Nvcsw),
		InvolCS: uint64(ru.Nivcsw),
	}, true
}

// tasks lists the thread ids of pid from /proc/PID/task.
func tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list threads: %w", ErrExited)
		}
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
