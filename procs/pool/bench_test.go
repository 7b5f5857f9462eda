package pool

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPool measures the pool's own cost on tasks that do almost
// nothing (squaring an int): one op is one chunk, sent to a worker and
// answered, with 2 workers and 2 chunks in flight each. It reports
//
//	ns/chunk  wall time per chunk (the same as ns/op)
//	tasks/s   tasks mapped per second
//
//	go test -run '^$' -bench Pool -benchtime 2000x ./procs/pool
func BenchmarkPool(b *testing.B) {
	for _, chunk := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			ctx := b.Context()
			p, err := New(ctx, Config{Role: roleSquare, Workers: 2})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			n := b.N * chunk
			b.ResetTimer()
			start := time.Now()
			err = MapUnordered(ctx, p, ints2seq(n), chunk, func(i, r int, err error) error { return err })
			elapsed := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/chunk")
			b.ReportMetric(float64(n)/elapsed.Seconds(), "tasks/s")
		})
	}
}
