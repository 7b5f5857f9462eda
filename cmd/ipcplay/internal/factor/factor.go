package factor

// Factorize appends the prime factors of n, with multiplicity and in
// ascending order, to dst and returns it: nothing for n < 2. It is the
// classic factorize_naive: trial division by 2, then by odd numbers, until
// the square of the divisor passes what is left.
func Factorize(n uint64, dst []uint64) []uint64 {
	if n < 2 {
		return dst
	}
	p := uint64(2)
	for n != 1 {
		switch {
		case n%p == 0:
			dst = append(dst, p)
			n /= p
		case p*p >= n:
			return append(dst, n)
		case p > 2:
			p += 2
		default:
			p = 3
		}
	}
	return dst
}

// MaxSieve is the largest upto SieveSum accepts: its sieve takes 4 bytes
// per number.
const MaxSieve = 20_000_000

// SieveSum returns the sum, over every n in 1..upto, of the prime factors of
// n counted with multiplicity, computed with a smallest-prime-factor sieve:
// an answer that shares no code with Factorize. upto is capped at MaxSieve.
func SieveSum(upto uint64) uint64 {
	upto = min(upto, MaxSieve)
	if upto < 2 {
		return 0
	}
	spf := make([]uint32, upto+1)
	for i := uint64(2); i <= upto; i++ {
		if spf[i] != 0 {
			continue
		}
		for j := i; j <= upto; j += i {
			if spf[j] == 0 {
				spf[j] = uint32(i)
			}
		}
	}
	var total uint64
	for n := uint64(2); n <= upto; n++ {
		for m := n; m > 1; {
			p := uint64(spf[m])
			total += p
			m /= p
		}
	}
	return total
}
