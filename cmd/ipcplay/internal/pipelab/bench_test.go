package pipelab

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"ipcplay/procs"
)

func TestBenchRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fds := openFDs(t)
	runs, err := Bench(ctx, BenchConfig{Rounds: 500, Bytes: 8 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 12 {
		t.Fatalf("%d runs, want 12", len(runs))
	}
	for _, r := range runs {
		t.Logf("%s %s %s pipe %d: median %v p99 %v, %.2f GB/s %s %s", r.Test, r.Mode, r.Path, r.PipeSize, r.RTTMedian, r.RTTP99, r.GBps(), r.Note, r.Skipped)
		if r.Skipped != "" {
			if r.Path != PathVmspliceSpliceHuge {
				t.Errorf("%s skipped: %s", r.Path, r.Skipped)
			}
			continue
		}
		switch r.Test {
		case "pingpong":
			if r.RTTMedian <= 0 || r.RTTP99 < r.RTTMedian {
				t.Errorf("%+v", r)
			}
		case "throughput":
			if r.Elapsed <= 0 || r.Bytes != 8<<20 {
				t.Errorf("%+v", r)
			}
			if r.Mode == ModeProcs && r.PipeSize == 0 {
				t.Errorf("pipe size unknown: %+v", r)
			}
		}
	}
	if runs[5].PipeSize <= runs[3].PipeSize {
		t.Errorf("the big pipe (%d) is not bigger than the default (%d)", runs[5].PipeSize, runs[3].PipeSize)
	}
	if kids, err := procs.Children(os.Getpid()); err != nil || len(kids) > 0 {
		t.Errorf("children left: %v %v", kids, err)
	}
	if got := openFDs(t); got != fds {
		t.Errorf("%d fds before, %d after", fds, got)
	}
}

// The benchmarks run one child per sub-benchmark and b.N round trips (or
// b.N 64 KiB chunks) in it, so ns/op includes starting the child; the
// metrics they report (ns-median/roundtrip, ns-p99/roundtrip, GB/s) time
// the transfer alone.

func BenchmarkPingPong(b *testing.B) {
	for _, path := range []string{PathRaw, PathFile} {
		b.Run(fmt.Sprintf("mode=procs/path=%s", path), func(b *testing.B) {
			r, err := PingPongProcs(b.Context(), path, b.N)
			if err != nil {
				b.Fatal(err)
			}
			reportRTT(b, r)
		})
	}
	b.Run("mode=goroutines/path=chan", func(b *testing.B) {
		reportRTT(b, PingPongGoroutines(b.N))
	})
}

func reportRTT(b *testing.B, r BenchRun) {
	b.ReportMetric(float64(r.RTTMedian.Nanoseconds()), "ns-median/roundtrip")
	b.ReportMetric(float64(r.RTTP99.Nanoseconds()), "ns-p99/roundtrip")
}

func BenchmarkThroughput(b *testing.B) {
	const chunk = 64 << 10
	for _, size := range []int{0, 1 << 20} {
		for _, path := range []string{PathRaw, PathFile} {
			b.Run(fmt.Sprintf("mode=procs/path=%s/pipe=%d", path, size), func(b *testing.B) {
				r, err := ThroughputProcs(b.Context(), path, size, int64(b.N)*chunk, chunk)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.GBps(), "GB/s")
			})
		}
	}
	for _, variant := range ZeroCopyPaths() {
		b.Run(fmt.Sprintf("mode=procs/path=%s/pipe=%d", variant, 1<<20), func(b *testing.B) {
			r, err := ThroughputZeroCopy(b.Context(), variant, 1<<20, int64(b.N)*chunk, chunk)
			if err != nil {
				b.Fatal(err)
			}
			if r.Skipped != "" {
				b.Skip(r.Skipped)
			}
			b.ReportMetric(r.GBps(), "GB/s")
		})
	}
	for _, path := range []string{PathIOPipe, PathChan} {
		b.Run(fmt.Sprintf("mode=goroutines/path=%s", path), func(b *testing.B) {
			r, err := ThroughputGoroutines(path, int64(b.N)*chunk, chunk)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.GBps(), "GB/s")
		})
	}
}
