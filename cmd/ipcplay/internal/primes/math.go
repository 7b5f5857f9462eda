package primes

import "math/bits"

// SerialCutoff is where the serial phase ends: divisors below it are tried
// by the caller before any worker starts, as in the classic lab.
const SerialCutoff = 21

// Isqrt returns the largest r with r*r <= n, for every uint64 n.
func Isqrt(n uint64) uint64 {
	if n < 2 {
		return n
	}
	// Newton's method from above. The start 2^ceil(bits/2) is at least
	// sqrt(n), and the sequence decreases monotonically to the floor.
	x := uint64(1) << ((bits.Len64(n) + 1) / 2)
	for {
		y := (x + n/x) / 2
		if y >= x {
			return x
		}
		x = y
	}
}

// A Range is the odd candidates Lo, Lo+2, ..., Hi. Lo and Hi are odd; the
// range is empty when Lo > Hi.
type Range struct {
	Lo, Hi uint64
}

// Len returns how many candidates the range holds.
func (r Range) Len() uint64 {
	if r.Lo > r.Hi {
		return 0
	}
	return (r.Hi-r.Lo)/2 + 1
}

// oddRange returns the odd numbers in [lo, hi].
func oddRange(lo, hi uint64) Range {
	if lo%2 == 0 {
		lo++
	}
	if hi%2 == 0 {
		if hi == 0 {
			return Range{Lo: 1, Hi: 0}
		}
		hi--
	}
	if lo > hi {
		return Range{Lo: hi + 2, Hi: hi}
	}
	return Range{Lo: lo, Hi: hi}
}

// Split divides the odd numbers in [lo, hi] into n consecutive ranges whose
// lengths differ by at most one. Some ranges are empty when there are fewer
// candidates than n.
func Split(lo, hi uint64, n int) []Range {
	all := oddRange(lo, hi)
	total := all.Len()
	out := make([]Range, n)
	for w := range n {
		// Candidate indexes [a, b) go to worker w; total < 2^63, so the
		// products cannot overflow for any sane n.
		a := total * uint64(w) / uint64(n)
		b := total * uint64(w+1) / uint64(n)
		if a == b {
			out[w] = Range{Lo: all.Lo + 2*a, Hi: all.Lo + 2*a - 2}
			continue
		}
		out[w] = Range{Lo: all.Lo + 2*a, Hi: all.Lo + 2*(b-1)}
	}
	return out
}

// serial tries 2 and the odd divisors below SerialCutoff that are at most
// isqrt(n). It returns a divisor found (0 if none) and how many it tried.
func serial(n, root uint64) (factor, tried uint64) {
	if n < 4 {
		return 0, 0 // 0 and 1 are decided by the caller; 2 and 3 are prime
	}
	tried = 1
	if n%2 == 0 {
		return 2, tried
	}
	for i := uint64(3); i < SerialCutoff && i <= root; i += 2 {
		tried++
		if n%i == 0 {
			return i, tried
		}
	}
	return 0, tried
}

// parallelRange returns the candidates left for the workers once the serial
// phase found nothing.
func parallelRange(root uint64) Range {
	if root < SerialCutoff {
		return Range{Lo: SerialCutoff, Hi: SerialCutoff - 2}
	}
	return oddRange(SerialCutoff, root)
}
