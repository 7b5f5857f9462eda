package factor

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// benchUpTo is N for the benchmarks: big enough for chunks of 10,000 to be
// several per worker, small enough for one op to take a fraction of a second.
const benchUpTo = 200_000

// BenchmarkFactor runs factorize_naive over 1..200,000 on 2 processes and
// on 2 goroutines, one after the other in each op, at several chunk sizes.
// It reports, besides ns/op (both runs and the pool's start):
//
//	procs-tasks/s       tasks per second on the pool (start excluded)
//	goroutines-tasks/s  tasks per second on goroutines
//	procs/goroutines    the pool's time over the goroutines' (lower is better)
//	cpu-procs/goroutines  the same for CPU time (user+system, workers included),
//	                    steadier than wall time on a busy machine
//	overhead-ns/chunk   (procs - goroutines) x workers / chunks: the cost of
//	                    one chunk's messages to a worker, beyond the work
//	overhead-ns/task    the same per task: it falls as chunks grow
//
//	go test -run '^$' -bench Factor -benchtime 3x ./cmd/ipcplay/internal/factor
func BenchmarkFactor(b *testing.B) {
	for _, chunk := range []int{1, 10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			ctx := b.Context()
			cfg := Config{UpTo: benchUpTo, Workers: 2, ChunkSize: chunk}
			var procs, gor, procsCPU, gorCPU time.Duration
			var chunks uint64
			for b.Loop() {
				p := run(ctx, b, Procs, cfg)
				g := run(ctx, b, Goroutines, cfg)
				procs += p.Elapsed
				gor += g.Elapsed
				procsCPU += p.CPU
				gorCPU += g.CPU
				chunks += p.Chunks
			}
			tasks := float64(benchUpTo) * float64(b.N)
			b.ReportMetric(tasks/procs.Seconds(), "procs-tasks/s")
			b.ReportMetric(tasks/gor.Seconds(), "goroutines-tasks/s")
			b.ReportMetric(float64(procs)/float64(gor), "procs/goroutines")
			b.ReportMetric(float64(procsCPU)/float64(gorCPU), "cpu-procs/goroutines")
			b.ReportMetric(float64((procs-gor)*time.Duration(cfg.Workers))/float64(chunks), "overhead-ns/chunk")
			b.ReportMetric(float64((procs-gor)*time.Duration(cfg.Workers))/tasks, "overhead-ns/task")
		})
	}
}

func run(ctx context.Context, b *testing.B, mode Mode, cfg Config) Result {
	res, err := Run(ctx, mode, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if want := SieveSum(cfg.UpTo); res.SumOfFactors != want {
		b.Fatalf("%s: sum %d, want %d", mode, res.SumOfFactors, want)
	}
	return res
}
