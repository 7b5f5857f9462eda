package queuelab

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"time"
	_ "unsafe" // for go:linkname
)

// nanotime is the Go runtime's monotonic clock: CLOCK_MONOTONIC read
// through the vDSO, so no system call. CLOCK_MONOTONIC is one clock for
// every process on the machine, so a time taken by a producer process can
// be subtracted from one taken by a consumer process. (time.Now's
// monotonic reading only means something inside the process that took it.)
// runtime.nanotime is on the runtime's list of names that may be linked.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// A value, as both sides of the lab move it, is at least valueHead bytes:
// the producer (uint32), its sequence number (uint32) and, on sampled
// values only, the producer's nanotime when it sent the value (int64; zero
// on the others). The rest is padding up to the configured size.
const valueHead = 16

// putValue writes producer p's value s into v, stamped when s is sampled.
func putValue(v []byte, p, s uint32, mask uint32) {
	binary.LittleEndian.PutUint32(v, p)
	binary.LittleEndian.PutUint32(v[4:], s)
	var t int64
	if s&mask == 0 {
		t = nanotime()
	}
	binary.LittleEndian.PutUint64(v[8:], uint64(t))
}

// sampleMask returns k-1 for the k (a power of two) such that every k-th
// value of a producer carries a time stamp: about 2,000 samples a run, and
// at least one in 1,024 values, so that the clock is read on a small
// fraction of the values whatever the run's length.
func sampleMask(messages int) uint32 {
	k := max(1, messages/2048)
	k = 1 << bits.Len(uint(k-1)) // the next power of two
	return uint32(min(k, 1024) - 1)
}

// A checker is one consumer's accounting: a bit per value of every
// producer (exactly once), the next sequence number expected from each
// producer (order), and the latency of sampled values. It costs a few
// loads and stores per value and no clock read except on sampled values.
type checker struct {
	mask      uint32
	next      []uint32
	share     []uint32 // values each producer sends
	bits      [][]uint64
	count     uint64
	reordered uint64
	dups      uint64 // values this consumer got twice
	lat       []int64
	last      int64 // nanotime of the last value
}

func newChecker(cfg Config) *checker {
	c := &checker{mask: sampleMask(cfg.Messages), next: make([]uint32, cfg.Producers),
		share: make([]uint32, cfg.Producers), bits: make([][]uint64, cfg.Producers)}
	for p := range c.bits {
		c.share[p] = uint32(cfg.share(p))
		c.bits[p] = make([]uint64, (cfg.share(p)+63)/64)
	}
	return c
}

// take accounts for value v. It fails on a value that was never sent.
func (c *checker) take(v []byte) error {
	if len(v) < valueHead {
		return fmt.Errorf("value of %d bytes, want at least %d", len(v), valueHead)
	}
	p, s := binary.LittleEndian.Uint32(v), binary.LittleEndian.Uint32(v[4:])
	if int(p) >= len(c.share) || s >= c.share[p] {
		return fmt.Errorf("value %d of producer %d was never sent", s, p)
	}
	c.count++
	w, b := &c.bits[p][s/64], uint64(1)<<(s%64)
	if *w&b != 0 {
		c.dups++
	}
	*w |= b
	if s < c.next[p] {
		c.reordered++
	}
	c.next[p] = s + 1
	if s&c.mask == 0 {
		if t := int64(binary.LittleEndian.Uint64(v[8:])); t != 0 {
			c.lat = append(c.lat, nanotime()-t)
		}
	}
	return nil
}

// tally merges the consumers' checkers into res: values received, lost
// (no consumer has its bit), duplicated (a consumer had it twice, or two
// consumers had it), out of order, and the latency percentiles.
func tally(cfg Config, cs []*checker, res *Result) {
	var lat []int64
	for _, c := range cs {
		res.Received += int(c.count)
		res.Duplicates += int(c.dups)
		res.Reordered += int(c.reordered)
		lat = append(lat, c.lat...)
	}
	for p := range cfg.Producers {
		n := cfg.share(p)
		got := 0
		for i := range (n + 63) / 64 {
			var acc uint64
			for _, c := range cs {
				w := c.bits[p][i]
				res.Duplicates += bits.OnesCount64(acc & w)
				acc |= w
			}
			got += bits.OnesCount64(acc)
		}
		res.Lost += n - got
	}
	res.Samples = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		res.LatencyP50, res.LatencyP99 = percentile(lat, 0.50), percentile(lat, 0.99)
		res.LatencyMax = time.Duration(lat[len(lat)-1])
	}
}

// percentile returns the p-th quantile of sorted ns.
func percentile(ns []int64, p float64) time.Duration {
	return time.Duration(ns[min(len(ns)-1, int(p*float64(len(ns))))])
}

// writeTo writes the checker for the parent: count, reordered, dups, last
// time, the latency samples, then each producer's bits, all little-endian
// 64-bit words.
func (c *checker) writeTo(w io.Writer) error {
	words := []uint64{c.count, c.reordered, c.dups, uint64(c.last), uint64(len(c.lat))}
	for _, l := range c.lat {
		words = append(words, uint64(l))
	}
	b := make([]byte, 0, 8*len(words))
	for _, x := range words {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	for _, bs := range c.bits {
		for _, x := range bs {
			b = binary.LittleEndian.AppendUint64(b, x)
		}
	}
	_, err := w.Write(b)
	return err
}

// readChecker reads what writeTo wrote.
func readChecker(cfg Config, b []byte) (*checker, error) {
	word := func() (uint64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		x := binary.LittleEndian.Uint64(b)
		b = b[8:]
		return x, true
	}
	c := newChecker(cfg)
	var hdr [5]uint64
	for i := range hdr {
		var ok bool
		if hdr[i], ok = word(); !ok {
			return nil, fmt.Errorf("report cut short: %d of 5 header words", i)
		}
	}
	c.count, c.reordered, c.dups, c.last = hdr[0], hdr[1], hdr[2], int64(hdr[3])
	if hdr[4] > uint64(len(b)/8) {
		return nil, fmt.Errorf("report claims %d latency samples in %d bytes", hdr[4], len(b))
	}
	c.lat = make([]int64, hdr[4])
	for i := range c.lat {
		x, _ := word()
		c.lat[i] = int64(x)
	}
	for _, bs := range c.bits {
		for i := range bs {
			x, ok := word()
			if !ok {
				return nil, fmt.Errorf("report cut short in the bitmaps")
			}
			bs[i] = x
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("report has %d bytes too many", len(b))
	}
	return c, nil
}
