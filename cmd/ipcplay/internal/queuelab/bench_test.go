package queuelab

import (
	"context"
	"testing"
	"time"

	"ipcplay/procs/cost"
)

// BenchmarkLab runs the lab on b.N messages of 64 bytes, 1 producer to 1
// consumer, with the command's default capacity and window: impl=process
// through an ipc.Queue between child processes, impl=ring through a
// shared-memory ring (SPSC) between them, impl=goroutine through the
// lab's checked channel, impl=channel through a bare channel. It reports
// messages per second, ns per message and, where the kernel lets them be
// counted, system calls per message of every process involved. The
// children's start-up is outside the timing (the start gate).
func BenchmarkLab(b *testing.B) {
	for _, impl := range []string{"process", "ring", "goroutine", "channel"} {
		b.Run("impl="+impl, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
			defer cancel()
			cfg := Config{Producers: 1, Consumers: 1, Messages: max(b.N, 1), Size: 64, Capacity: 1 << 16, Window: 1 << 14}
			var res Result
			var err error
			switch impl {
			case "process":
				res, err = Run(ctx, Procs, cfg)
			case "ring":
				var r ShmResult
				r, err = RunShm(ctx, cfg)
				res = r.Result
			case "goroutine":
				res, err = Run(ctx, Goroutines, cfg)
			default:
				res, err = RunChannel(ctx, cfg)
			}
			if err != nil {
				b.Fatal(err)
			}
			if impl != "channel" && !res.OK() {
				b.Fatalf("not exactly once: %+v", res)
			}
			b.ReportMetric(res.MessagesPerSecond(), "msgs/s")
			b.ReportMetric(float64(res.Elapsed.Nanoseconds())/float64(res.Received), "ns/msg")
			if impl != "channel" && res.CostErr == nil && res.Cost.SyscallMethod == cost.MethodTracepoint {
				b.ReportMetric(float64(res.Cost.Syscalls)/float64(res.Received), "syscalls/msg")
			}
			b.ReportMetric(0, "ns/op") // the run is one lab, timed inside
		})
	}
}
