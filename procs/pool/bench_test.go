package pool

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
)

// BenchmarkPool measures the pool's own cost on tasks that do almost
// nothing (squaring an int): one op is one chunk, sent to a worker and
// answered, with 2 workers and 2 chunks in flight each. Worker start-up is
// left out. It reports
//
//	ns/chunk              wall time per chunk (the same as ns/op)
//	tasks/s               tasks mapped per second
//	parent-cpu-ns/task    the parent's CPU time (user+system) per task:
//	                      encoding tasks, decoding results, dispatching
//	worker-cpu-ns/task    the workers' CPU time per task (from
//	                      /proc/PID/stat, in clock ticks: run long enough)
//
// CPU time hardly changes when other programs compete for the machine,
// where wall time does.
//
//	go test -run '^$' -bench Pool -benchtime 2000x ./procs/pool
func BenchmarkPool(b *testing.B) {
	for _, chunk := range []int{1, 10, 100, 1000, 0} {
		name := fmt.Sprintf("chunk=%d", chunk)
		if chunk == 0 {
			name = "chunk=auto"
		}
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			p, err := New(ctx, Config{Role: roleSquare, Workers: 2})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			// One small map first, so that the workers are up and serving.
			if _, err := Map[int, int](ctx, p, ints(10), 1); err != nil {
				b.Fatal(err)
			}
			size := chunk
			if size == 0 {
				size = 1000 // so that b.N chunks are about as many tasks
			}
			n := b.N * size
			pids := p.PIDs()
			self0, workers0 := selfCPU(), procCPU(b, pids)
			b.ResetTimer()
			start := time.Now()
			err = MapUnordered(ctx, p, ints2seq(n), chunk, func(i, r int, err error) error { return err })
			elapsed := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			self, workers := selfCPU()-self0, procCPU(b, pids)-workers0
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/chunk")
			b.ReportMetric(float64(n)/elapsed.Seconds(), "tasks/s")
			b.ReportMetric(float64(self.Nanoseconds())/float64(n), "parent-cpu-ns/task")
			b.ReportMetric(float64(workers.Nanoseconds())/float64(n), "worker-cpu-ns/task")
		})
	}
}

// selfCPU is this process's user and system time so far.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the user and system time of the processes pids so far, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 10 ms).
func procCPU(b *testing.B, pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatal(err)
		}
		f := bytes.Fields(st[bytes.LastIndexByte(st, ')')+1:])
		for _, i := range []int{11, 12} { // utime, stime after the name
			ticks, err := strconv.ParseInt(string(f[i]), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += time.Duration(ticks) * 10 * time.Millisecond
		}
	}
	return total
}

// BenchmarkStart compares, in the same run, a worker's start-up (from just
// before its Start to its hello: procs.Command, the socket pair, the child's
// runtime and role, the hello over the socket) with a bare re-exec of the
// same binary that exits at once (procs.MeasureSpawn). Each op does one of
// each. It reports
//
//	bare-ns/op    spawn to exit of procs.BareRole
//	ready-ns/op   spawn to hello of a pool worker
//	ready/bare    the ratio (issue 14 aims at 1.5 at most)
//
//	go test -run '^$' -bench Start -count 3 ./procs/pool
func BenchmarkStart(b *testing.B) {
	ctx := b.Context()
	var bare, ready time.Duration
	for b.Loop() {
		st, err := procs.MeasureSpawn(ctx, 1)
		if err != nil {
			b.Fatal(err)
		}
		bare += st.Median
		p, err := New(ctx, Config{Role: roleSquare, Workers: 1})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Ready(ctx); err != nil {
			b.Fatal(err)
		}
		ready += p.Startups()[0]
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N), "bare-ns/op")
	b.ReportMetric(float64(ready.Nanoseconds())/float64(b.N), "ready-ns/op")
	b.ReportMetric(float64(ready)/float64(bare), "ready/bare")
}
