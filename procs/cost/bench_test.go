package cost

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSyscall measures what counting adds to a system call, getppid(2)
// in this process: with no counter; with a counter on another process (an
// open sys_enter event puts every thread on the machine on the kernel's
// tracing path); with a counter on this process; and with eight per-name
// counters besides.
func BenchmarkSyscall(b *testing.B) {
	names := []string{"getppid", "read", "write", "futex", "sendmsg", "recvmsg", "epoll_pwait", "nanosleep"}
	for _, mode := range []string{"off", "other", "self", "self+byname"} {
		b.Run("counter="+mode, func(b *testing.B) {
			if mode != "off" {
				if _, err := tracepointID(defaultTracefsDirs); err != nil {
					b.Skip(err)
				}
			}
			var ctr *Counter
			var err error
			switch mode {
			case "other":
				c := startChild(b, roleSleep, "1")
				ctr, err = Start(c.cmd.Pid())
			case "self":
				ctr, err = Start(os.Getpid())
			case "self+byname":
				ctr, err = StartWith(Options{ByName: names}, os.Getpid())
			}
			if err != nil {
				b.Fatal(err)
			}
			if ctr != nil {
				defer ctr.Close()
			}
			// Wall time swings with the machine's load; the thread's
			// own CPU time does not wait for a CPU.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			u0, err := ThreadUsage()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				unix.Getppid()
			}
			u1, err := ThreadUsage()
			if err != nil {
				b.Fatal(err)
			}
			d := u1.Sub(u0)
			b.ReportMetric(float64(d.UserNS+d.SysNS)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkStartStop measures the counter's cost in the caller: Start and
// Stop on this process, or on a child with the Go runtime's threads. Most
// of it is the kernel registering the tracepoint on the first open and
// unregistering it on the last close.
func BenchmarkStartStop(b *testing.B) {
	for _, target := range []string{"self", "child"} {
		b.Run("target="+target, func(b *testing.B) {
			pid := os.Getpid()
			if target == "child" {
				pid = startChild(b, roleSleep, "1").cmd.Pid()
			}
			var threads int
			for b.Loop() {
				ctr, err := Start(pid)
				if err != nil {
					b.Fatal(err)
				}
				s, err := ctr.Stop()
				if err != nil {
					b.Fatal(err)
				}
				threads = s.Procs[0].Threads
			}
			b.ReportMetric(float64(threads), "threads")
		})
	}
}
