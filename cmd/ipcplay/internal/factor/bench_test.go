package factor

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"
)

// benchUpTo is N for the benchmarks: by default big enough for chunks of
// 10,000 to be several per worker, small enough for one op to take a
// fraction of a second. The lab's own N is -args -upto 1000000.
var benchUpTo = flag.Uint64("upto", 200_000, "N for BenchmarkFactor")

// BenchmarkFactor runs factorize_naive over 1..200,000 (-upto) on 2 processes and
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
//	chunks/op           chunks per pool run (the pool's choice at chunk=auto)
//	startup/bare        a worker's spawn to ready over a bare re-exec of
//	                    the same binary, timed in the same op (medians);
//	                    start-up is outside every other figure
//	cpu-procs/goroutines counts the workers' whole life, start-up included
//
//	go test -run '^$' -bench Factor -benchtime 3x ./cmd/ipcplay/internal/factor
//	go test -run '^$' -bench 'Factor/chunk=(1000|10000|auto)$' -benchtime 3x ./cmd/ipcplay/internal/factor -args -upto 1000000
func BenchmarkFactor(b *testing.B) {
	for _, chunk := range []int{1, 10, 100, 1000, 10000, 0} {
		name := fmt.Sprintf("chunk=%d", chunk)
		if chunk == 0 {
			name = "chunk=auto" // the pool's choice; GoroutineChunk for goroutines
		}
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			cfg := Config{UpTo: *benchUpTo, Workers: 2, ChunkSize: chunk}
			var procs, gor, procsCPU, gorCPU, ready, bare time.Duration
			var chunks uint64
			cfg.SpawnBaseline = cfg.Workers
			for b.Loop() {
				p := run(ctx, b, Procs, cfg)
				g := run(ctx, b, Goroutines, cfg)
				procs += p.Elapsed
				gor += g.Elapsed
				procsCPU += p.CPU
				gorCPU += g.CPU
				chunks += p.Chunks
				ready += p.Startups.Median
				bare += p.Bare.Median
			}
			tasks := float64(*benchUpTo) * float64(b.N)
			b.ReportMetric(tasks/procs.Seconds(), "procs-tasks/s")
			b.ReportMetric(tasks/gor.Seconds(), "goroutines-tasks/s")
			b.ReportMetric(float64(procs)/float64(gor), "procs/goroutines")
			b.ReportMetric(float64(procsCPU)/float64(gorCPU), "cpu-procs/goroutines")
			b.ReportMetric(float64((procs-gor)*time.Duration(cfg.Workers))/float64(chunks), "overhead-ns/chunk")
			b.ReportMetric(float64((procs-gor)*time.Duration(cfg.Workers))/tasks, "overhead-ns/task")
			b.ReportMetric(float64(chunks)/float64(b.N), "chunks/op")
			b.ReportMetric(float64(ready)/float64(bare), "startup/bare")
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
