package pool

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// factorsOf returns the prime factors of n, with multiplicity: results
// shaped as the factor lab's.
func factorsOf(n uint64) []uint64 {
	var fs []uint64
	for p := uint64(2); p*p <= n; p++ {
		for n%p == 0 {
			fs = append(fs, p)
			n /= p
		}
	}
	if n > 1 {
		fs = append(fs, n)
	}
	return fs
}

// BenchmarkDecodeResults measures what the map pays per result to decode
// a chunk of []uint64 results, as MapUnorderedWith does, and sum them: the
// parent's share of a task's cost in the factor lab (results of n near
// 500,000). Most of it is the GC's: a slice per result.
func BenchmarkDecodeResults(b *testing.B) {
	const n = 6000
	var buf bytes.Buffer
	w := newWriter[[]uint64](&buf, msgpack.NewEncoder(&buf))
	for i := range uint64(n) {
		if err := w.put(factorsOf(500_000 + i)); err != nil {
			b.Fatal(err)
		}
	}
	data := buf.Bytes()
	rd := newReader[[]uint64]()
	r := new([]uint64)
	var sum uint64
	for b.Loop() {
		if err := rd.reset(data); err != nil {
			b.Fatal(err)
		}
		for range n {
			if err := rd.next(r); err != nil {
				b.Fatal(err)
			}
			for _, f := range *r {
				sum += f
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/result")
	b.ReportMetric(0, "ns/op")
	if sum == 0 {
		b.Fatal("no factors")
	}
}
