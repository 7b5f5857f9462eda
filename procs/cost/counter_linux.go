package cost

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A Counter measures a set of processes over a window: from [Start] to
// [Counter.Stop]. It holds one perf event descriptor per thread that was
// alive at Start, so Stop (or Close) must be called. Its methods are safe for
// concurrent use.
type Counter struct {
	mu      sync.Mutex
	method  string
	targets []*target
	t0      time.Time
	ownNS   int64 // time spent inside Start
	done    bool
}

// target is one measured process.
type target struct {
	pid    int
	self   bool
	fds    []int            // sys_enter events, one per thread alive at Start
	named  map[string][]int // per-name events, one per thread, by name
	unsure int              // threads that appeared while attaching
	start  Usage
	final  *Usage // set by Exited
}

// Start begins measuring the processes pids; this process may be among them
// (os.Getpid()). It takes a usage snapshot of each and, where the kernel
// allows it, attaches a counter of the raw_syscalls:sys_enter tracepoint to
// every thread listed in /proc/PID/task, with inherit set so that threads
// (and child processes) created later by those threads are counted too.
//
// Only system calls entered after Start are counted. Threads that a
// process creates while Start is listing and attaching its threads are
// counted only if their creator was already attached; their number is in
// [Sample.UnsureThreads]. Attach to a child once it has reported ready, when
// the Go runtime has made its threads.
//
// When system calls cannot be counted (no tracefs, perf_event_paranoid,
// missing capability) Start still succeeds: the Sample says
// "unavailable: <reason>" in SyscallMethod and counts the rest. Start fails
// if a process does not exist.
func Start(pids ...int) (*Counter, error) {
	return start(defaultTracefsDirs, Options{}, pids)
}

// Options adjusts [StartWith]. The zero value gives [Start].
type Options struct {
	// ByName lists system calls to count one by one besides the total,
	// by their tracepoint names (the NAME of
	// events/syscalls/sys_enter_NAME in tracefs, such as "sendmsg",
	// "futex", "epoll_pwait"). Each name costs one more descriptor per
	// thread. A name with no tracepoint makes StartWith fail, unless the
	// kernel has no per-syscall tracepoints at all: then Sample.ByName
	// stays nil.
	ByName []string
}

// StartWith is [Start] with options.
func StartWith(opts Options, pids ...int) (*Counter, error) {
	return start(defaultTracefsDirs, opts, pids)
}

func start(tracefs []string, opts Options, pids []int) (*Counter, error) {
	t0 := time.Now()
	c := &Counter{method: MethodTracepoint}
	self := os.Getpid()
	// Usage first, and this process last, so that Start's own system
	// calls are counted as little as possible.
	pids = slices.Clone(pids)
	slices.SortStableFunc(pids, func(a, b int) int {
		return boolInt(a == self) - boolInt(b == self)
	})
	for _, pid := range pids {
		t := &target{pid: pid, self: pid == self}
		var err error
		if t.self {
			t.start, err = SelfUsage()
		} else {
			t.start, err = ReadUsage(pid)
		}
		if err != nil {
			c.closeAll()
			return nil, fmt.Errorf("start cost counter: %w", err)
		}
		c.targets = append(c.targets, t)
	}
	id, err := tracepointID(tracefs)
	if err != nil {
		if _, ok := errors.AsType[*unavailableError](err); !ok {
			return nil, fmt.Errorf("start cost counter: %w", err)
		}
		c.method = err.Error()
	}
	var named map[string]uint64
	if c.method == MethodTracepoint && len(opts.ByName) > 0 {
		if named, err = syscallIDs(tracefs, opts.ByName); err != nil {
			c.closeAll()
			return nil, fmt.Errorf("start cost counter: %w", err)
		}
	}
	for _, t := range c.targets {
		if c.method != MethodTracepoint {
			break
		}
		if err := c.attach(id, named, t); err != nil {
			if ue, ok := errors.AsType[*unavailableError](err); ok {
				c.method = ue.Error()
				c.closeFDs()
				break
			}
			c.closeAll()
			return nil, fmt.Errorf("start cost counter: %w", err)
		}
	}
	c.t0 = time.Now()
	c.ownNS = c.t0.Sub(t0).Nanoseconds()
	return c, nil
}

// attach opens one event per thread of t.pid, then lists the threads again
// to count those that appeared meanwhile.
func (c *Counter) attach(id uint64, named map[string]uint64, t *target) error {
	tids, err := tasks(t.pid)
	if err != nil {
		return fmt.Errorf("attach to pid %d: %w", t.pid, err)
	}
	for _, tid := range tids {
		fd, err := openSysEnter(id, tid)
		if errors.Is(err, unix.ESRCH) {
			continue // the thread exited since the listing
		}
		if err != nil {
			if r := permissionReason(err); r != nil {
				return r
			}
			return fmt.Errorf("attach to pid %d thread %d: %w", t.pid, tid, os.NewSyscallError("perf_event_open", err))
		}
		t.fds = append(t.fds, fd)
		for name, nid := range named {
			fd, err := openSysEnter(nid, tid)
			if errors.Is(err, unix.ESRCH) {
				break
			}
			if err != nil {
				if r := permissionReason(err); r != nil {
					return r
				}
				return fmt.Errorf("attach %s counter to pid %d thread %d: %w", name, t.pid, tid, os.NewSyscallError("perf_event_open", err))
			}
			if t.named == nil {
				t.named = make(map[string][]int)
			}
			t.named[name] = append(t.named[name], fd)
		}
	}
	if len(t.fds) == 0 {
		return fmt.Errorf("attach to pid %d: %w", t.pid, ErrExited)
	}
	again, err := tasks(t.pid)
	if err != nil {
		return fmt.Errorf("attach to pid %d: %w", t.pid, err)
	}
	for _, tid := range again {
		if !slices.Contains(tids, tid) {
			t.unsure++
		}
	}
	return nil
}

// Exited records the final usage of a measured child that has been waited
// for (st is its Cmd's ProcessState). Call it before Stop for every child
// reaped inside the window: once reaped, /proc no longer has its figures.
// Its whole-life rusage also counts context switches of threads that exited
// early, which /proc misses.
func (c *Counter) Exited(pid int, st *os.ProcessState) error {
	u, ok := UsageOf(st)
	if !ok {
		return fmt.Errorf("record exit of pid %d: no rusage", pid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.targets {
		if t.pid == pid && !t.self {
			t.final = &u
			return nil
		}
	}
	return fmt.Errorf("record exit of pid %d: not measured", pid)
}

// Stop ends the window: it reads every counter and a second usage snapshot,
// releases the descriptors, and returns the differences. If a process's
// figures cannot be read, Stop returns what it could read with an error
// naming the process. A second Stop returns an error.
func (c *Counter) Stop() (Sample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return Sample{}, errors.New("stop cost counter: already stopped")
	}
	c.done = true
	t1 := time.Now()
	s := Sample{SyscallMethod: c.method, WallNS: t1.Sub(c.t0).Nanoseconds()}
	var errs []error
	// This process first, so that Stop's own calls are counted least.
	for _, t := range slices.Backward(c.targets) {
		p := Proc{PID: t.pid, Threads: len(t.fds), UnsureThreads: t.unsure}
		for _, fd := range t.fds {
			n, err := readCount(fd)
			if err != nil {
				errs = append(errs, fmt.Errorf("count system calls of pid %d: %w", t.pid, err))
				continue
			}
			p.Syscalls += n
		}
		for name, fds := range t.named {
			if p.ByName == nil {
				p.ByName = make(map[string]uint64)
			}
			for _, fd := range fds {
				n, err := readCount(fd)
				if err != nil {
					errs = append(errs, fmt.Errorf("count %s calls of pid %d: %w", name, t.pid, err))
					continue
				}
				p.ByName[name] += n
			}
		}
		var end Usage
		var err error
		switch {
		case t.final != nil:
			end = *t.final
		case t.self:
			end, err = SelfUsage()
		default:
			end, err = ReadUsage(t.pid)
		}
		if err != nil {
			if errors.Is(err, ErrExited) {
				err = fmt.Errorf("%w (reaped without Counter.Exited)", err)
			}
			errs = append(errs, fmt.Errorf("stop cost counter: %w", err))
		} else {
			p.Usage = end.Sub(t.start)
		}
		s.Procs = append(s.Procs, p)
	}
	slices.Reverse(s.Procs)
	for _, p := range s.Procs {
		s.Syscalls += p.Syscalls
		s.Usage = s.Usage.Add(p.Usage)
		s.UnsureThreads += p.UnsureThreads
		for name, n := range p.ByName {
			if s.ByName == nil {
				s.ByName = make(map[string]uint64)
			}
			s.ByName[name] += n
		}
	}
	c.closeFDs()
	s.CounterNS = c.ownNS + time.Since(t1).Nanoseconds()
	return s, errors.Join(errs...)
}

// Close releases the counter's descriptors without reading them. It is
// safe to call after Stop, and more than once.
func (c *Counter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	c.closeFDs()
	return nil
}

func (c *Counter) closeFDs() {
	for _, t := range c.targets {
		for _, fd := range t.fds {
			unix.Close(fd)
		}
		t.fds = nil
		for _, fds := range t.named {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		t.named = nil
	}
}

func (c *Counter) closeAll() {
	c.closeFDs()
	c.targets = nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
