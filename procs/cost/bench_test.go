package cost

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSyscall measures what the tracepoint adds to every system call
// of a measured process: getppid(2) with and without a counter attached to
// this process.
func BenchmarkSyscall(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "counter=off"
		if on {
			name = "counter=on"
		}
		b.Run(name, func(b *testing.B) {
			if on {
				ctr, err := Start(os.Getpid())
				if err != nil {
					b.Fatal(err)
				}
				defer ctr.Close()
				if _, err := tracepointID(defaultTracefsDirs); err != nil {
					b.Skip(err)
				}
			}
			for b.Loop() {
				unix.Getppid()
			}
		})
	}
}

// BenchmarkStartStop measures the counter's cost in the caller: Start and
// Stop on this process, or on a child with the Go runtime's threads.
func BenchmarkStartStop(b *testing.B) {
	b.Run("target=self", func(b *testing.B) {
		var threads int
		for b.Loop() {
			ctr, err := Start(os.Getpid())
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
	b.Run("target=child", func(b *testing.B) {
		c := startChild(b, roleSleep, "1")
		var threads int
		for b.Loop() {
			ctr, err := Start(c.cmd.Pid())
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
