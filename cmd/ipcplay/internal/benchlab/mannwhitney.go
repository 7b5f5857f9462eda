package benchlab

import (
	"math"
	"slices"
)

// mannWhitney returns the two-sided p-value of the Mann-Whitney U test
// that samples a and b come from the same distribution, as benchstat uses
// it: exact (all splits of the pooled ranks, ties by mid-rank) when both
// samples together hold at most 20 values, the normal approximation
// otherwise. It returns 1 when either sample is empty.
func mannWhitney(a, b []float64) float64 {
	n, m := len(a), len(b)
	if n == 0 || m == 0 {
		return 1
	}
	type v struct {
		x   float64
		inA bool
	}
	all := make([]v, 0, n+m)
	for _, x := range a {
		all = append(all, v{x, true})
	}
	for _, x := range b {
		all = append(all, v{x, false})
	}
	slices.SortFunc(all, func(p, q v) int {
		switch {
		case p.x < q.x:
			return -1
		case p.x > q.x:
			return 1
		}
		return 0
	})
	ranks := make([]float64, len(all))
	var tieTerm float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].x == all[i].x {
			j++
		}
		for k := i; k < j; k++ {
			ranks[k] = float64(i+j+1) / 2 // mid-rank, 1-based
		}
		t := float64(j - i)
		tieTerm += t*t*t - t
		i = j
	}
	var ra float64
	for i, e := range all {
		if e.inA {
			ra += ranks[i]
		}
	}
	mean := float64(n) * float64(n+m+1) / 2
	obs := math.Abs(ra - mean)
	if n+m <= 20 {
		// Exact: the share of the C(n+m, n) ways of giving n of the
		// pooled ranks to a whose rank sum is at least as far from
		// the mean.
		var hit, total float64
		var walk func(start, left int, sum float64)
		walk = func(start, left int, sum float64) {
			if left == 0 {
				total++
				if math.Abs(sum-mean) >= obs-1e-9 {
					hit++
				}
				return
			}
			for i := start; i <= len(ranks)-left; i++ {
				walk(i+1, left-1, sum+ranks[i])
			}
		}
		walk(0, n, 0)
		return hit / total
	}
	N := float64(n + m)
	sd := math.Sqrt(float64(n*m) / 12 * ((N + 1) - tieTerm/(N*(N-1))))
	if sd == 0 {
		return 1
	}
	z := (obs - 0.5) / sd
	return math.Erfc(max(z, 0) / math.Sqrt2)
}
