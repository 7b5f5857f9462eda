package pipes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// VerdictPipeFull is the verdict Observe gives when the evidence shows a
// process blocked writing to a full pipe.
const VerdictPipeFull = "blocked writing to a full pipe"

// A Watch describes what [Observe] looks at.
type Watch struct {
	// PID is the process to watch.
	PID int
	// Pipe is the parent's end of the pipe the process writes to (the
	// read end), for FIONREAD and F_GETPIPE_SZ.
	Pipe *os.File
	// Progress returns how much the process has done so far, for example
	// the bytes it has written as it publishes them in shared memory. Nil
	// means the progress is unknown, and then no stall is ever claimed.
	Progress func() int64
	// Window is how long the process must make no progress; zero means
	// 250ms.
	Window time.Duration
}

// Thread is what /proc says about one thread of the watched process.
type Thread struct {
	TID   int    `json:"tid"`
	State string `json:"state"` // one letter, see proc(5): R, S, D, Z, T...
	Wchan string `json:"wchan"` // the kernel function it sleeps in, "0" if none or hidden
	// Syscall is the first line of /proc/PID/task/TID/syscall: "running",
	// or the syscall number and its arguments. Empty when unreadable, and
	// SyscallErr says why.
	Syscall    string `json:"syscall,omitempty"`
	SyscallNr  int    `json:"syscall_nr"` // -1 when not in a syscall or unknown
	SyscallErr string `json:"syscall_err,omitempty"`
}

// Evidence is what [Observe] saw.
type Evidence struct {
	PID int `json:"pid"`
	// State, Wchan, Syscall and SyscallNr are those of the thread that
	// tells the most: one in write(2) or sleeping in a pipe function if
	// there is one, else the thread group leader.
	State     string `json:"state"`
	Wchan     string `json:"wchan"`
	Syscall   string `json:"syscall,omitempty"`
	SyscallNr int    `json:"syscall_nr"`
	// SyscallName names SyscallNr on this architecture ("write").
	SyscallName string   `json:"syscall_name,omitempty"`
	SyscallErr  string   `json:"syscall_err,omitempty"`
	Threads     []Thread `json:"threads,omitempty"`

	PipeBuffered int `json:"pipe_buffered"`
	PipeCapacity int `json:"pipe_capacity"`

	ProgressKnown  bool    `json:"progress_known"`
	ProgressBefore int64   `json:"progress_before"`
	ProgressAfter  int64   `json:"progress_after"`
	WindowSeconds  float64 `json:"window_seconds"`
	// Gone is set when the process had exited (or was a zombie).
	Gone bool `json:"gone,omitempty"`
}

// A Verdict is Observe's conclusion and the evidence behind it.
type Verdict struct {
	// Blocked is true only when the process was sleeping in a write to the
	// pipe, the pipe was full, and no progress was made.
	Blocked bool `json:"blocked"`
	// Reason is VerdictPipeFull when Blocked, and otherwise says what was
	// seen instead, e.g. "making progress" or "running".
	Reason   string   `json:"reason"`
	Evidence Evidence `json:"evidence"`
}

// Observe watches w.PID for w.Window and returns its verdict. It fails only
// if the pipe cannot be inspected or ctx ends first; a process that has
// gone away is a verdict, not an error.
func Observe(ctx context.Context, w Watch) (Verdict, error) {
	win := w.Window
	if win <= 0 {
		win = 250 * time.Millisecond
	}
	ev := Evidence{PID: w.PID, WindowSeconds: win.Seconds(), ProgressKnown: w.Progress != nil, SyscallNr: -1}
	if w.Progress != nil {
		ev.ProgressBefore = w.Progress()
	}
	// The state must hold over the whole window: sample a few times and
	// give up on "sleeping" as soon as a thread is seen running.
	sawRunning := false
	t := time.NewTicker(win / 5)
	defer t.Stop()
	deadline := time.Now().Add(win)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return Verdict{}, context.Cause(ctx)
		case <-t.C:
		}
		ths, err := readThreads(w.PID)
		if err != nil {
			break
		}
		for _, th := range ths {
			if th.State == "R" {
				sawRunning = true
			}
		}
	}
	if w.Progress != nil {
		ev.ProgressAfter = w.Progress()
	}
	ths, err := readThreads(w.PID)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return Verdict{}, err
		}
		ev.Gone = true
	}
	ev.Threads = ths
	if th, ok := pick(ths); ok {
		ev.State, ev.Wchan, ev.Syscall, ev.SyscallNr, ev.SyscallErr = th.State, th.Wchan, th.Syscall, th.SyscallNr, th.SyscallErr
		if th.SyscallNr >= 0 {
			ev.SyscallName = SyscallName(th.SyscallNr)
		}
	}
	if ev.State == "Z" || ev.State == "X" {
		ev.Gone = true
	}
	if w.Pipe != nil {
		if ev.PipeBuffered, err = Buffered(w.Pipe); err != nil {
			return Verdict{}, err
		}
		if ev.PipeCapacity, err = Capacity(w.Pipe); err != nil {
			return Verdict{}, err
		}
	}
	return judge(ev, sawRunning), nil
}

// judge is the rule, kept apart from the reading so it can be tested.
func judge(ev Evidence, sawRunning bool) Verdict {
	v := Verdict{Evidence: ev}
	inWrite := ev.SyscallNr == unix.SYS_WRITE || ev.SyscallNr == unix.SYS_WRITEV
	inPipe := strings.Contains(ev.Wchan, "pipe")
	full := ev.PipeCapacity > 0 && ev.PipeBuffered >= ev.PipeCapacity-PipeBuf
	switch {
	case ev.Gone:
		v.Reason = "the process has exited"
	case !ev.ProgressKnown:
		v.Reason = "progress unknown: no stall claimed"
	case ev.ProgressAfter != ev.ProgressBefore:
		v.Reason = fmt.Sprintf("making progress (%d -> %d)", ev.ProgressBefore, ev.ProgressAfter)
	case sawRunning || ev.State == "R":
		v.Reason = "no progress, but running (busy, not blocked)"
	case ev.State != "S":
		v.Reason = fmt.Sprintf("no progress, state %s (not an interruptible sleep)", ev.State)
	case !full:
		v.Reason = fmt.Sprintf("no progress, sleeping, but the pipe is not full (%d of %d bytes)", ev.PipeBuffered, ev.PipeCapacity)
	case !inWrite && !inPipe:
		v.Reason = fmt.Sprintf("no progress, pipe full, but sleeping elsewhere (wchan %q, syscall %s)", ev.Wchan, describeSyscall(ev))
	default:
		v.Blocked = true
		v.Reason = VerdictPipeFull
	}
	return v
}

func describeSyscall(ev Evidence) string {
	switch {
	case ev.SyscallErr != "":
		return "unreadable: " + ev.SyscallErr
	case ev.SyscallNr >= 0:
		return strconv.Itoa(ev.SyscallNr)
	case ev.Syscall != "":
		return ev.Syscall
	}
	return "unknown"
}

// pick returns the thread that says the most: one in write(2) or sleeping
// in a pipe function, else the leader (the first, as tids are sorted and
// the leader's tid is the pid).
func pick(ths []Thread) (Thread, bool) {
	if len(ths) == 0 {
		return Thread{}, false
	}
	for _, th := range ths {
		if th.SyscallNr == unix.SYS_WRITE || th.SyscallNr == unix.SYS_WRITEV || strings.Contains(th.Wchan, "pipe") {
			return th, true
		}
	}
	return ths[0], true
}

// readThreads reads every thread of pid. It fails with an error wrapping
// os.ErrNotExist if the process is gone.
func readThreads(pid int) ([]Thread, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("threads of %d: %w", pid, err)
	}
	var ths []Thread
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		th, err := readThread(filepath.Join(dir, e.Name()), tid)
		if err != nil {
			continue // the thread ended meanwhile
		}
		ths = append(ths, th)
	}
	if len(ths) == 0 {
		return nil, fmt.Errorf("threads of %d: %w", pid, os.ErrNotExist)
	}
	sort.Slice(ths, func(i, j int) bool { return ths[i].TID < ths[j].TID })
	return ths, nil
}

func readThread(dir string, tid int) (Thread, error) {
	th := Thread{TID: tid, SyscallNr: -1}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return th, err
	}
	if th.State, err = ParseState(string(stat)); err != nil {
		return th, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "wchan")); err == nil {
		th.Wchan = strings.TrimSpace(string(b))
	}
	b, err := os.ReadFile(filepath.Join(dir, "syscall"))
	if err != nil {
		th.SyscallErr = err.Error()
		var errno unix.Errno
		if errors.As(err, &errno) {
			th.SyscallErr = errno.Error()
		}
		return th, nil
	}
	th.Syscall = strings.TrimSpace(string(b))
	th.SyscallNr = ParseSyscallNr(th.Syscall)
	return th, nil
}

// ParseState returns the state letter from the contents of /proc/PID/stat.
// The command name in parentheses may itself hold spaces and parentheses,
// so the state is the first field after the last ')'.
func ParseState(stat string) (string, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return "", fmt.Errorf("parse stat: no ')' in %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) == 0 {
		return "", fmt.Errorf("parse stat: nothing after the command in %q", stat)
	}
	return f[0], nil
}

// ParseSyscallNr returns the syscall number from the contents of
// /proc/PID/syscall, or -1 for "running", a thread blocked outside a
// syscall ("-1 ..."), or anything it cannot parse.
func ParseSyscallNr(s string) int {
	f := strings.Fields(s)
	if len(f) == 0 {
		return -1
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 {
		return -1
	}
	return n
}

var syscallNames = map[int]string{
	unix.SYS_READ:        "read",
	unix.SYS_WRITE:       "write",
	unix.SYS_WRITEV:      "writev",
	unix.SYS_FUTEX:       "futex",
	unix.SYS_NANOSLEEP:   "nanosleep",
	unix.SYS_EPOLL_PWAIT: "epoll_pwait",
	unix.SYS_WAIT4:       "wait4",
	unix.SYS_WAITID:      "waitid",
	unix.SYS_PPOLL:       "ppoll",
}

// SyscallName names the system calls a sleeping thread is most often in,
// by their number on this architecture, and returns "syscall N" for the
// others.
func SyscallName(nr int) string {
	if name, ok := syscallNames[nr]; ok {
		return name
	}
	return "syscall " + strconv.Itoa(nr)
}
