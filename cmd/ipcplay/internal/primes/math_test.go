package primes

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestIsqrt(t *testing.T) {
	check := func(n uint64) {
		t.Helper()
		r := Isqrt(n)
		want := new(big.Int).Sqrt(new(big.Int).SetUint64(n)).Uint64()
		if r != want {
			t.Fatalf("Isqrt(%d) = %d, want %d", n, r, want)
		}
	}
	for n := range uint64(10000) {
		check(n)
	}
	for _, p := range []uint64{4294967291, 4294967295, 4294967296, 3037000499, 1 << 31} {
		sq := p * p // wraps for p >= 2^32, which is also a fine input
		for d := uint64(0); d < 3; d++ {
			check(sq - d)
			check(sq + d)
		}
	}
	check(math.MaxUint64)
	check(math.MaxUint64 - 1)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		check(rng.Uint64() >> rng.UintN(64))
	}
}

func TestSplit(t *testing.T) {
	cases := []struct{ lo, hi uint64 }{
		{21, 21}, {21, 22}, {21, 23}, {21, 100}, {21, 101}, {22, 1000},
		{21, 4294967295}, {21, 4294967291}, {21, 65535},
	}
	for _, c := range cases {
		for _, n := range []int{1, 2, 3, 4, 7, 64} {
			rs := Split(c.lo, c.hi, n)
			if len(rs) != n {
				t.Fatalf("Split(%d, %d, %d) has %d ranges", c.lo, c.hi, n, len(rs))
			}
			all := oddRange(c.lo, c.hi)
			next := all.Lo
			var total uint64
			minLen, maxLen := uint64(math.MaxUint64), uint64(0)
			for i, r := range rs {
				if r.Lo != next {
					t.Fatalf("Split(%d, %d, %d)[%d].Lo = %d, want %d", c.lo, c.hi, n, i, r.Lo, next)
				}
				if r.Lo%2 == 0 || (r.Len() > 0 && r.Hi%2 == 0) {
					t.Fatalf("Split(%d, %d, %d)[%d] = %+v has an even end", c.lo, c.hi, n, i, r)
				}
				next = r.Lo + 2*r.Len()
				total += r.Len()
				minLen, maxLen = min(minLen, r.Len()), max(maxLen, r.Len())
			}
			if total != all.Len() {
				t.Fatalf("Split(%d, %d, %d) covers %d candidates, want %d", c.lo, c.hi, n, total, all.Len())
			}
			if maxLen-minLen > 1 {
				t.Fatalf("Split(%d, %d, %d) lengths range %d..%d", c.lo, c.hi, n, minLen, maxLen)
			}
			if last := rs[n-1]; last.Len() > 0 && last.Hi != all.Hi {
				t.Fatalf("Split(%d, %d, %d) ends at %d, want %d", c.lo, c.hi, n, last.Hi, all.Hi)
			}
		}
	}
}

func TestParallelRangeTop(t *testing.T) {
	// The largest n has isqrt 2^32-1, which is odd: it must be the last
	// candidate, with no overflow in the loop that reaches it.
	r := parallelRange(Isqrt(math.MaxUint64))
	if r.Hi != 4294967295 {
		t.Fatalf("parallelRange(isqrt(2^64-1)).Hi = %d, want 4294967295", r.Hi)
	}
}
