package rpclab

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkManager runs the manager lab once per iteration and reports the
// time per operation (an append and an incr) over all workers, for worker
// processes calling the server process and for goroutines under a
// sync.Mutex.
func BenchmarkManager(b *testing.B) {
	for _, mode := range []string{ModeRPC, ModeShm, ModeGoroutines} {
		for _, p := range []int{1, 4} {
			b.Run(fmt.Sprintf("mode=%s/procs=%d", mode, p), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				cfg := ManagerConfig{Procs: p, Ops: 2000}
				var elapsed time.Duration
				var ops int
				for b.Loop() {
					res, err := RunManager(ctx, cfg, []string{mode})
					if err != nil {
						b.Fatal(err)
					}
					if res[0].Err != nil {
						b.Fatal(res[0].Err)
					}
					elapsed += res[0].Elapsed
					ops += res[0].Ops
				}
				b.ReportMetric(0, "ns/op") // a whole run, setup included: not a useful figure
				b.ReportMetric(float64(elapsed.Nanoseconds())/float64(ops), "ns/managerop")
				b.ReportMetric(float64(ops)/elapsed.Seconds(), "managerops/s")
			})
		}
	}
}
