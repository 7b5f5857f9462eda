package cost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
)

// The roles the tests start: each prints "ready", waits for a line on
// stdin, does its work, prints "done" and exits at stdin's EOF.
const (
	roleSyscalls = "cost-test-syscalls" // args: getppid|write N
	roleSleep    = "cost-test-sleep"    // args: N sleeps of 2 ms
	roleSpin     = "cost-test-spin"     // args: ms of CPU to burn
	roleThreads  = "cost-test-threads"  // args: T N: T new threads, N getppid each
	// roleNobody drops root to uid and gid 65534, measures itself and
	// prints the method and the system calls counted, without the
	// ready/go handshake.
	roleNobody = "cost-test-nobody"
)

func TestMain(m *testing.M) {
	procs.Register(roleSyscalls, func(ctx context.Context, args []string) error {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		var work func() error
		switch args[0] {
		case "getppid":
			work = func() error { unix.Getppid(); return nil }
		case "write":
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			fd := int(f.Fd())
			buf := []byte("x")
			work = func() error { _, err := unix.Write(fd, buf); return err }
		default:
			return fmt.Errorf("unknown kind %q", args[0])
		}
		return childWork(func() error {
			for range n {
				if err := work(); err != nil {
					return err
				}
			}
			return nil
		})
	})
	procs.Register(roleSleep, func(ctx context.Context, args []string) error {
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		return childWork(func() error {
			for range n {
				time.Sleep(2 * time.Millisecond) // the workload, not a synchronisation
			}
			return nil
		})
	})
	procs.Register(roleSpin, func(ctx context.Context, args []string) error {
		ms, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		want := int64(ms) * int64(time.Millisecond)
		return childWork(func() error {
			// ThreadUsage counts this thread only: stay on it.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			u0, err := ThreadUsage()
			if err != nil {
				return err
			}
			x := uint64(1)
			for {
				for range 1 << 20 {
					x = x*6364136223846793005 + 1442695040888963407
				}
				u, err := ThreadUsage()
				if err != nil {
					return err
				}
				if u.UserNS+u.SysNS-u0.UserNS-u0.SysNS >= want {
					if x == 42 {
						fmt.Fprintln(os.Stderr, x) // keep x alive
					}
					return nil
				}
			}
		})
	})
	procs.Register(roleThreads, func(ctx context.Context, args []string) error {
		threads, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		return childWork(func() error {
			// One after another, each on a thread of its own that
			// exits with the goroutine (locked, never unlocked): the
			// runtime must make a new thread for each, after the
			// counter attached.
			for range threads {
				done := make(chan struct{})
				go func() {
					defer close(done)
					runtime.LockOSThread()
					for range n {
						unix.Getppid()
					}
				}()
				<-done
			}
			return nil
		})
	})
	procs.Register(roleNobody, func(ctx context.Context, args []string) error {
		if err := syscall.Setgroups(nil); err != nil {
			return err
		}
		if err := syscall.Setresgid(65534, 65534, 65534); err != nil {
			return err
		}
		if err := syscall.Setresuid(65534, 65534, 65534); err != nil {
			return err
		}
		ctr, err := Start(os.Getpid())
		if err != nil {
			return err
		}
		unix.Getppid()
		s, err := ctr.Stop()
		if err != nil {
			return err
		}
		fmt.Printf("%d %s\n", s.Syscalls, s.SyscallMethod)
		return nil
	})
	procs.Init()
	os.Exit(m.Run())
}

// childWork is the common shape of the test roles.
func childWork(work func() error) error {
	in := bufio.NewReader(os.Stdin)
	fmt.Println("ready")
	if line, err := in.ReadString('\n'); err != nil || line != "go\n" {
		return fmt.Errorf("want go, got %q: %v", line, err)
	}
	if err := work(); err != nil {
		return err
	}
	fmt.Println("done")
	_, err := io.Copy(io.Discard, in)
	return err
}

// child is a running test role.
type child struct {
	cmd *procs.Cmd
	in  *os.File
	out *bufio.Reader
	rc  *os.File
}

// startChild starts role and waits for its "ready". The child is stopped
// and waited for in Cleanup, even if the test fails.
func startChild(t testing.TB, role string, args ...string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: procs.Command(ctx, role, args...), in: inW, out: bufio.NewReader(outR), rc: outR}
	c.cmd.Stdin, c.cmd.Stdout = inR, outW
	err = c.cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.in.Close()
		c.cmd.Wait() // a no-op error if the test already waited
		c.rc.Close()
	})
	c.expect(t, "ready")
	return c
}

func (c *child) expect(t testing.TB, want string) {
	t.Helper()
	line, err := c.out.ReadString('\n')
	if err != nil || line != want+"\n" {
		t.Fatalf("child said %q (%v), want %q", line, err, want)
	}
}

// run tells the child to work and waits until it is done.
func (c *child) run(t *testing.T) {
	t.Helper()
	if _, err := c.in.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	c.expect(t, "done")
}

// finish closes the child's stdin and waits for it to exit.
func (c *child) finish(t *testing.T) *os.ProcessState {
	t.Helper()
	c.in.Close()
	if err := c.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return c.cmd.ProcessState()
}

// needTracepoint skips the test, with the reason, when this machine does not
// let us count system calls. As root it mounts tracefs first if it is
// missing, as perf(1) does.
func needTracepoint(t *testing.T) {
	t.Helper()
	if _, err := tracepointID(defaultTracefsDirs); err != nil && os.Geteuid() == 0 {
		if err := MountTracefs(); err != nil {
			t.Logf("mount tracefs: %v", err)
		} else {
			t.Log("mounted tracefs on /sys/kernel/tracing")
		}
	}
	id, err := tracepointID(defaultTracefsDirs)
	if err != nil {
		t.Skip(err)
	}
	fd, err := openSysEnter(id, unix.Gettid())
	if err != nil {
		if r := permissionReason(err); r != nil {
			t.Skip(r)
		}
		t.Fatal(err)
	}
	unix.Close(fd)
}

func TestSyscallsCounted(t *testing.T) {
	needTracepoint(t)
	const n = 50000
	for _, kind := range []string{"getppid", "write"} {
		t.Run("kind="+kind, func(t *testing.T) {
			c := startChild(t, roleSyscalls, kind, strconv.Itoa(n))
			ctr, err := StartWith(Options{ByName: []string{"getppid", "write", "futex"}}, c.cmd.Pid())
			if err != nil {
				t.Fatal(err)
			}
			defer ctr.Close()
			c.run(t)
			s, err := ctr.Stop()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d %s calls: counted %d system calls on %d threads, %d unsure, counter took %v",
				n, kind, s.Syscalls, s.Procs[0].Threads, s.UnsureThreads, time.Duration(s.CounterNS))
			if s.SyscallMethod != MethodTracepoint {
				t.Fatalf("SyscallMethod = %q, want %q", s.SyscallMethod, MethodTracepoint)
			}
			// The child's own extra calls: the write of "done", the
			// read that waits for EOF, and the runtime's (sysmon's
			// sleeps, futex wake-ups): 40 to 500 here, more on a loaded
			// machine. A double count would be twice n.
			if s.Syscalls < n || s.Syscalls > n+n/20 {
				t.Fatalf("Syscalls = %d, want %d to %d", s.Syscalls, n, n+n/20)
			}
			// write also counts the child's "done" (and any wake-up
			// of the runtime's poller, an eventfd write).
			t.Logf("by name: %v", s.ByName)
			if got := s.ByName[kind]; got < n || got > n+10 {
				t.Fatalf("ByName[%s] = %d, want %d to %d", kind, got, n, n+10)
			}
			if d := s.Per(n).Dominant(); !strings.Contains(d, "1 system call per message, mostly "+kind) {
				t.Fatalf("Dominant() = %q, want it to name %s", d, kind)
			}
			c.finish(t)
		})
	}
}

// TestSyscallsNewThreads checks inherit: threads created after Start, and
// exited before Stop, are counted.
func TestSyscallsNewThreads(t *testing.T) {
	needTracepoint(t)
	// More threads than the child has idle ones, so that some are new.
	const threads, n = 10, 2000
	c := startChild(t, roleThreads, strconv.Itoa(threads), strconv.Itoa(n))
	ctr, err := StartWith(Options{ByName: []string{"getppid", "clone", "clone3"}}, c.cmd.Pid())
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Close()
	c.run(t)
	s, err := ctr.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attached %d threads; counted %v", s.Procs[0].Threads, s.ByName)
	if s.ByName["clone"]+s.ByName["clone3"] == 0 {
		t.Fatal("no clone counted: the child made no new thread, the test proves nothing")
	}
	if got := s.ByName["getppid"]; got != threads*n {
		t.Fatalf("getppid counted %d times on new threads, want %d", got, threads*n)
	}
	c.finish(t)
}

func TestSyscallsSelf(t *testing.T) {
	needTracepoint(t)
	const n = 20000
	ctr, err := Start(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Close()
	for range n {
		unix.Getppid()
	}
	s, err := ctr.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counted %d system calls on %d threads", s.Syscalls, s.Procs[0].Threads)
	if s.Syscalls < n || s.Syscalls > n+n/20 {
		t.Fatalf("Syscalls = %d, want %d to %d", s.Syscalls, n, n+n/20)
	}
}

// TestCounterOwnCalls bounds the system calls the counter itself adds to
// this process's count in an empty window: those it makes (listing threads,
// opening and reading events), not the runtime's sleeps and wake-ups, which
// grow with the time a loaded machine keeps the window open.
func TestCounterOwnCalls(t *testing.T) {
	needTracepoint(t)
	// Names differ between architectures, and some calls have no
	// tracepoint (perf_event_open on amd64): keep those this kernel has.
	var own []string
	for _, name := range []string{"perf_event_open", "read", "openat", "getdents64", "close", "fstat", "newfstat", "newfstatat", "fcntl"} {
		if _, err := syscallIDs(defaultTracefsDirs, []string{name}); err == nil {
			own = append(own, name)
		}
	}
	ctr, err := StartWith(Options{ByName: own}, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctr.Stop()
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, n := range s.ByName {
		sum += n
	}
	threads := s.Procs[0].Threads
	t.Logf("empty window: %d system calls on %d threads, the counter's own: %v", s.Syscalls, threads, s.ByName)
	// Per thread at most one perf_event_open per event and one read
	// per event, plus two listings of /proc/self/task.
	if limit := uint64(2*(1+len(own))*threads + 20); sum > limit {
		t.Fatalf("the counter made %d system calls in an empty window, want at most %d", sum, limit)
	}
}

func TestUsageSleepVsSpin(t *testing.T) {
	const (
		sleeps = 50
		spinMS = 200
	)
	for _, reaped := range []bool{false, true} {
		t.Run(fmt.Sprintf("reaped=%v", reaped), func(t *testing.T) {
			measure := func(role, arg string) Sample {
				c := startChild(t, role, arg)
				ctr, err := Start(c.cmd.Pid())
				if err != nil {
					t.Fatal(err)
				}
				defer ctr.Close()
				c.run(t)
				if reaped {
					st := c.finish(t)
					if err := ctr.Exited(c.cmd.Pid(), st); err != nil {
						t.Fatal(err)
					}
				}
				s, err := ctr.Stop()
				if err != nil {
					t.Fatal(err)
				}
				if !reaped {
					c.finish(t)
				}
				t.Logf("%s: user %v sys %v vol %d invol %d wall %v", role,
					time.Duration(s.UserNS), time.Duration(s.SysNS), s.VolCS, s.InvolCS, time.Duration(s.WallNS))
				return s
			}
			sleep := measure(roleSleep, strconv.Itoa(sleeps))
			spin := measure(roleSpin, strconv.Itoa(spinMS))
			// CPU time from /proc comes in 10 ms ticks.
			if cpu := spin.UserNS + spin.SysNS; cpu < (spinMS-20)*int64(time.Millisecond) {
				t.Errorf("spinner CPU = %v, want at least %dms", time.Duration(cpu), spinMS-20)
			}
			if spin.UserNS <= spin.SysNS {
				t.Errorf("spinner user CPU %v <= system CPU %v", time.Duration(spin.UserNS), time.Duration(spin.SysNS))
			}
			if sleep.VolCS < sleeps {
				t.Errorf("sleeper VolCS = %d, want at least %d", sleep.VolCS, sleeps)
			}
			if cpu := sleep.UserNS + sleep.SysNS; cpu >= spin.UserNS {
				t.Errorf("sleeper CPU %v >= spinner user CPU %v", time.Duration(cpu), time.Duration(spin.UserNS))
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	ctr, err := start([]string{t.TempDir()}, Options{ByName: []string{"write"}}, []int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctr.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.SyscallMethod, "unavailable: tracefs not mounted") || s.Syscalls != 0 {
		t.Fatalf("Sample = %q, %d system calls; want unavailable: tracefs not mounted, 0", s.SyscallMethod, s.Syscalls)
	}
	if d := s.Per(10).Dominant(); !strings.Contains(d, "system calls not counted (tracefs not mounted") {
		t.Fatalf("Dominant() = %q, want it to say why system calls were not counted", d)
	}
}

func TestUnknownSyscallName(t *testing.T) {
	needTracepoint(t)
	_, err := StartWith(Options{ByName: []string{"no_such_call"}}, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), "no tracepoint") {
		t.Fatalf("StartWith(no_such_call) = %v, want a no tracepoint error", err)
	}
}

// TestUnprivileged checks the fallback on this kernel: a process without
// privileges gets a Sample that says why system calls were not counted.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child as nobody")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	c := procs.Command(ctx, roleNobody)
	c.Stdout = &out
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	t.Logf("as nobody: %s", out.String())
	n, method, _ := strings.Cut(strings.TrimSpace(out.String()), " ")
	if p, err := strconv.Atoi(paranoid()); err == nil && p <= 1 && method == MethodTracepoint {
		return // this kernel lets anyone count; nothing to fall back from
	}
	if n != "0" || !strings.HasPrefix(method, "unavailable: ") || !strings.Contains(method, "permission denied") || !strings.Contains(method, "perf_event_paranoid") {
		t.Fatalf("as nobody: %q, want 0 system calls and unavailable: ... permission denied ... perf_event_paranoid", out.String())
	}
}

func TestStartErrors(t *testing.T) {
	// pid_max is at most 2^22, so this pid cannot exist.
	_, err := Start(1 << 23)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Start(no such pid) = %v, want ErrExited", err)
	}
	ctr, err := Start(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := ctr.Exited(12345678, nil); err == nil {
		t.Fatal("Exited(nil state) = nil, want an error")
	}
	if _, err := ctr.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := ctr.Stop(); err == nil {
		t.Fatal("second Stop = nil, want an error")
	}
	if err := ctr.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReapedWithoutExited(t *testing.T) {
	c := startChild(t, roleSleep, "1")
	ctr, err := Start(c.cmd.Pid())
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Close()
	c.run(t)
	c.finish(t)
	_, err = ctr.Stop()
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "Counter.Exited") {
		t.Fatalf("Stop after reaping = %v, want ErrExited naming Counter.Exited", err)
	}
}
