package primes

import (
	"fmt"
	"testing"
)

// The benchmarks report, besides ns/op (the wall time of one Check):
//
//	cand/s/worker  candidates tried per second per worker, during the scan
//	setup-ns/op    starting and mapping the workers, until all are ready
//	stop-ns/op     from the stop flag being set to the last worker stopping
//
// Compare impl=procs with impl=goroutines in one run:
//
//	go test -run '^$' -bench . ./cmd/ipcplay/internal/primes

// benchNumbers are a prime whose scan takes a few milliseconds, a prime
// whose scan takes a second, and a number whose factor 23 is the first
// candidate of worker 0, so the flag stops the others at once.
var benchNumbers = []struct {
	name string
	n    uint64
}{
	{"prime14", 100000000000031},
	{"prime18", 100109100129100151},
	{"early-exit", 23 * 802032351030850057},
}

func BenchmarkCheck(b *testing.B) {
	for _, num := range benchNumbers {
		for _, workers := range []int{1, 2, 4} {
			for _, mode := range []Mode{Procs, Goroutines} {
				name := fmt.Sprintf("n=%s/workers=%d/impl=%s", num.name, workers, mode)
				b.Run(name, func(b *testing.B) {
					benchCheck(b, num.n, mode, Config{Workers: workers, CheckEvery: DefaultCheckEvery})
				})
			}
		}
	}
}

func benchCheck(b *testing.B, n uint64, mode Mode, cfg Config) {
	ctx := b.Context()
	var setup, stop, scan float64
	var checked uint64
	var runs, stops int
	for b.Loop() {
		res, err := Check(ctx, n, mode, cfg)
		if err != nil {
			b.Fatal(err)
		}
		runs++
		setup += float64(res.Setup)
		scan += res.Compute.Seconds()
		checked += res.Checked - res.SerialChecked
		if res.FlagSet {
			stops++
			stop += float64(res.StopLatency)
		}
	}
	b.ReportMetric(setup/float64(runs), "setup-ns/op")
	if scan > 0 {
		b.ReportMetric(float64(checked)/scan/float64(cfg.Workers), "cand/s/worker")
	}
	if stops > 0 {
		b.ReportMetric(stop/float64(stops), "stop-ns/op")
	}
}

// BenchmarkPlainLoop is trial division of the same prime with no board, no
// flag and no counters: what a worker's loop would cost with nothing
// shared. Its cand/s against BenchmarkCheck's cand/s/worker at one worker
// is the price of looking at shared memory every DefaultCheckEvery
// candidates.
func BenchmarkPlainLoop(b *testing.B) {
	const n = 100000000000031
	r := parallelRange(Isqrt(n))
	var tried uint64
	for b.Loop() {
		for i := r.Lo; i <= r.Hi; i += 2 {
			if n%i == 0 {
				b.Fatalf("%d divides the prime %d", i, n)
			}
		}
		tried += r.Len()
	}
	b.ReportMetric(float64(tried)/b.Elapsed().Seconds(), "cand/s")
}
