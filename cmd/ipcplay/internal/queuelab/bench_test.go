package queuelab

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLab runs the lab's processes and goroutines modes on b.N
// messages (2 producers, 2 consumers, 64-byte payloads, capacity 1024) and
// reports messages per second for each, their ratio, and the processes'
// median and 99th percentile latency.
func BenchmarkLab(b *testing.B) {
	for _, w := range []int{1, 64, 256} {
		b.Run("window="+strconv.Itoa(w), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
			defer cancel()
			cfg := Config{Producers: 2, Consumers: 2, Messages: max(b.N, 2), Size: 64, Capacity: 1024, Window: w}
			p, err := Run(ctx, Procs, cfg)
			if err != nil {
				b.Fatal(err)
			}
			g, err := Run(ctx, Goroutines, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if !p.OK() || !g.OK() {
				b.Fatalf("not exactly once: %+v %+v", p, g)
			}
			b.ReportMetric(p.MessagesPerSecond(), "procs-msgs/s")
			b.ReportMetric(g.MessagesPerSecond(), "goroutines-msgs/s")
			b.ReportMetric(g.MessagesPerSecond()/max(p.MessagesPerSecond(), 1), "goroutines/procs")
			b.ReportMetric(float64(p.LatencyP50.Microseconds()), "procs-p50-µs")
			b.ReportMetric(float64(p.LatencyP99.Microseconds()), "procs-p99-µs")
			b.ReportMetric(0, "ns/op") // the run is one lab, not b.N operations
		})
	}
}
