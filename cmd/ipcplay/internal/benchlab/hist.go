package benchlab

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: values below 2^subBits
// nanoseconds are kept exactly, and above that every power of two is cut
// into 2^(subBits-1) buckets, so a recorded value is off by less than
// 1/2^(subBits-1) (under 1.6%) of itself, as in HdrHistogram.
const subBits = 7

const (
	linear  = 1 << subBits // exact buckets for 0..linear-1
	half    = linear / 2   // buckets per power of two above that
	nBucket = linear + (64-subBits)*half
)

// LowSamples is the sample count below which a p99.9 rests on fewer than
// ten samples past it, and the report marks it.
const LowSamples = 10_000

// Hist is a log-linear histogram of durations, in the manner of
// HdrHistogram: constant relative error, fixed memory, O(1) Record. The zero
// value is not usable; call NewHist.
type Hist struct {
	counts   []uint64
	n        uint64
	min, max uint64
	sum      float64
}

// NewHist returns an empty histogram.
func NewHist() *Hist { return &Hist{counts: make([]uint64, nBucket), min: ^uint64(0)} }

// bucket returns the index of v's bucket.
func bucket(v uint64) int {
	if v < linear {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1
	return linear + (shift-1)*half + int(v>>shift) - half
}

// bounds returns the smallest and largest value of bucket i.
func bounds(i int) (lo, hi uint64) {
	if i < linear {
		return uint64(i), uint64(i)
	}
	shift := (i-linear)/half + 1
	top := uint64((i-linear)%half + half)
	lo = top << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one duration; negative ones count as zero.
func (h *Hist) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucket(v)]++
	h.n++
	h.min = min(h.min, v)
	h.max = max(h.max, v)
	h.sum += float64(v)
}

// Merge adds every sample of o.
func (h *Hist) Merge(o *Hist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
	h.sum += o.sum
}

// N returns the number of samples.
func (h *Hist) N() int64 { return int64(h.n) }

// Max returns the largest sample, exactly; 0 when empty.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Min returns the smallest sample, exactly; 0 when empty.
func (h *Hist) Min() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Mean returns the mean; 0 when empty.
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q (0.5 for the median): the
// middle of the bucket holding the sample of rank ceil(q*n), kept within
// the exact minimum and maximum. It returns 0 when empty.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = min(max(rank, 1), h.n)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			lo, hi := bounds(i)
			mid := lo + (hi-lo)/2
			return time.Duration(min(max(mid, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
