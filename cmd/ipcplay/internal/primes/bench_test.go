package primes

import (
	"fmt"
	"testing"
)

// The benchmarks report, besides ns/op:
//
//	s/number       the wall time of one Check, in seconds
//	cand/s/worker  candidates tried per second per worker, during the scan
//	setup-ns/op    starting and mapping the workers, until all are ready
//	stop-ns/op     from the stop flag being set to the last worker stopping
//
// Compare impl=procs with impl=goroutines in one run:
//
//	go test -run '^$' -bench . ./cmd/ipcplay/internal/primes

// benchNumbers are the two 18-digit primes of the classic lab, a prime
// whose scan takes milliseconds, and a number whose factor 23 is the first
// candidate of worker 0, so the flag stops the others at once.
var benchNumbers = []struct {
	name string
	n    uint64
}{
	{"prime18_1", 100109100129100151},
	{"prime18_2", 100109100129162907},
	{"prime14", 100000000000031},
	{"early-exit", 23 * 802032351030850057},
}

func BenchmarkPrimes(b *testing.B) {
	for _, num := range benchNumbers {
		for _, workers := range []int{2, 4} {
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
	b.ReportMetric(b.Elapsed().Seconds()/float64(runs), "s/number")
	b.ReportMetric(setup/float64(runs), "setup-ns/op")
	if scan > 0 {
		b.ReportMetric(float64(checked)/scan/float64(cfg.Workers), "cand/s/worker")
	}
	if stops > 0 {
		b.ReportMetric(stop/float64(stops), "stop-ns/op")
	}
}

// BenchmarkPlainLoop is trial division of the prime14 number with no board, no
// flag and no counters: what a worker's loop would cost with nothing
// shared. Its cand/s against BenchmarkPrimes' cand/s/worker at one worker
// is the price of looking at shared memory every DefaultCheckEvery
// candidates. Run both with -bench 'Primes/n=prime14|PlainLoop'.
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
