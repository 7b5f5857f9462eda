package shmlab

import (
	"context"
	"fmt"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
)

// BenchmarkTransfer moves size bytes per iteration through each path and
// reports each path's GB/s and its rate as a fraction of copy's, measured
// in the same run: shm/copy is the figure the issue aims at 0.8 or more.
// Only the timed part of each round counts (see Bench); filling the
// buffer and checking the checksum do not. A first, warm-up round faults
// the fresh buffers in and is left out.
func BenchmarkTransfer(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("size=%s", base.FormatSize(size)), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			src := make([]byte, size)
			cfg := BenchConfig{Size: size, Rounds: b.N + 1}
			rate := map[string]float64{}
			for _, run := range benchPaths {
				r, err := run(ctx, cfg, src)
				if err != nil {
					b.Fatal(err)
				}
				if !r.Verified {
					b.Fatalf("%s: checksum mismatch", r.Path)
				}
				var total time.Duration
				for _, d := range r.Times[1:] {
					total += d
				}
				rate[r.Path] = float64(size) * float64(b.N) / total.Seconds() / 1e9
				b.ReportMetric(rate[r.Path], r.Path+"-GB/s")
			}
			b.ReportMetric(rate[PathShm]/rate[PathCopy], "shm/copy")
			b.ReportMetric(rate[PathPipe]/rate[PathCopy], "pipe/copy")
			b.ReportMetric(rate[PathMsgpack]/rate[PathCopy], "msgpack/copy")
			b.ReportMetric(0, "ns/op") // the op mixes three paths and untimed setup
		})
	}
}

// BenchmarkCounter times one increment per op for each sync and mode,
// 4 workers sharing b.N increments.
func BenchmarkCounter(b *testing.B) {
	for _, s := range Syncs {
		for _, m := range []Mode{Procs, Goroutines} {
			b.Run(fmt.Sprintf("sync=%s/mode=%s", s, m), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				res, err := Counter(ctx, CounterConfig{Workers: 4, Increments: max(b.N/4, 1), Sync: s, Mode: m})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(res.Elapsed.Nanoseconds())/float64(res.Expected), "ns/increment")
				b.ReportMetric(float64(res.Lost)/float64(res.Expected), "lost-fraction")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// TestPairedRatio checks the verdict's figure: copy's time over shm's,
// round by round after the first, and its median.
func TestPairedRatio(t *testing.T) {
	ms := time.Millisecond
	res := []BenchResult{
		{Path: PathCopy, Times: []time.Duration{10 * ms, 10 * ms, 20 * ms, 4 * ms}},
		{Path: PathShm, Times: []time.Duration{1000 * ms, 20 * ms, 20 * ms, 5 * ms}},
		{Path: PathPipe, Times: []time.Duration{1 * ms, 1 * ms, 1 * ms, 1 * ms}},
	}
	// The first round (the child starting) is left out.
	med, lo, hi, n := pairedRatio(res)
	if med != 0.8 || lo != 0.5 || hi != 1 || n != 3 {
		t.Errorf("pairedRatio = %v, %v, %v, %d; want 0.8, 0.5, 1, 3", med, lo, hi, n)
	}
	if _, _, _, n := pairedRatio(res[:1]); n != 0 {
		t.Errorf("pairedRatio without shm: %d rounds, want 0", n)
	}
}
