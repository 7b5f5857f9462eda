package benchlab

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		v := r.Uint64() >> r.IntN(64)
		i := bucket(v)
		lo, hi := bounds(i)
		if v < lo || v > hi {
			t.Fatalf("bucket(%d) = %d, bounds %d..%d do not hold it", v, i, lo, hi)
		}
		if err := float64(hi-lo) / float64(max(v, 1)); err > 1.0/half {
			t.Fatalf("bucket(%d) is %d wide: relative error %.4f, want <= %.4f", v, hi-lo, err, 1.0/half)
		}
	}
	for i := 1; i < nBucket; i++ {
		_, hiPrev := bounds(i - 1)
		lo, _ := bounds(i)
		if lo != hiPrev+1 {
			t.Fatalf("bucket %d starts at %d, want %d (gap or overlap)", i, lo, hiPrev+1)
		}
	}
}

func TestQuantiles(t *testing.T) {
	h := NewHist()
	for v := 1; v <= 100_000; v++ {
		h.Record(time.Duration(v) * time.Nanosecond)
	}
	for _, tc := range []struct {
		q    float64
		want float64
	}{{0.5, 50_000}, {0.99, 99_000}, {0.999, 99_900}, {1, 100_000}} {
		got := float64(h.Quantile(tc.q))
		if got < tc.want*(1-1.0/half) || got > tc.want*(1+1.0/half) {
			t.Errorf("Quantile(%v) = %v, want %v within %.1f%%", tc.q, got, tc.want, 100.0/half)
		}
	}
	if h.N() != 100_000 || h.Max() != 100_000 || h.Min() != 1 {
		t.Errorf("N, Min, Max = %d, %v, %v, want 100000, 1ns, 100µs", h.N(), h.Min(), h.Max())
	}
	if m := h.Mean(); m < 50_000 || m > 50_001 {
		t.Errorf("Mean = %v, want 50000.5ns", m)
	}
}

func TestQuantileSmall(t *testing.T) {
	h := NewHist()
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Min() != 0 {
		t.Fatalf("empty histogram: Quantile, Max, Min = %v, %v, %v, want 0", h.Quantile(0.5), h.Max(), h.Min())
	}
	h.Record(12345 * time.Nanosecond)
	for _, q := range []float64{0, 0.5, 0.999, 1} {
		if got := h.Quantile(q); got != 12345 {
			t.Errorf("one sample: Quantile(%v) = %v, want 12.345µs (clamped to min and max)", q, got)
		}
	}
	h.Record(-5)
	if h.Min() != 0 || h.N() != 2 {
		t.Errorf("negative sample: Min, N = %v, %d, want 0, 2", h.Min(), h.N())
	}
}

func TestMerge(t *testing.T) {
	a, b, all := NewHist(), NewHist(), NewHist()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 10_000 {
		d := time.Duration(r.ExpFloat64() * 20_000)
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	a.Merge(NewHist())
	for _, q := range []float64{0.5, 0.99, 0.999} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("merged Quantile(%v) = %v, want %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.N() != all.N() || a.Max() != all.Max() || a.Min() != all.Min() {
		t.Errorf("merged N, Min, Max = %d, %v, %v, want %d, %v, %v", a.N(), a.Min(), a.Max(), all.N(), all.Min(), all.Max())
	}
}
