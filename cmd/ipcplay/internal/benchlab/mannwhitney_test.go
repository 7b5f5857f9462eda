package benchlab

import (
	"math"
	"testing"
)

func TestMannWhitney(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []float64
		want float64
	}{
		// 5 against 5 wholly apart: 2 of the 252 splits are as extreme.
		{"apart", []float64{1, 2, 3, 4, 5}, []float64{6, 7, 8, 9, 10}, 2.0 / 252},
		{"same", []float64{1, 1, 1}, []float64{1, 1, 1}, 1},
		{"empty", nil, []float64{1}, 1},
		// Interleaved: no evidence of a difference.
		{"interleaved", []float64{1, 3, 5, 7, 9}, []float64{2, 4, 6, 8, 10}, 0.69},
	} {
		got := mannWhitney(tc.a, tc.b)
		if math.Abs(got-tc.want) > 0.01 {
			t.Errorf("%s: mannWhitney = %.4f, want %.4f", tc.name, got, tc.want)
		}
	}
	// The normal approximation for larger samples: clearly apart.
	var a, b []float64
	for i := range 15 {
		a, b = append(a, float64(i)), append(b, float64(i+100))
	}
	if p := mannWhitney(a, b); p > 1e-4 {
		t.Errorf("15 against 15 apart: p = %g, want < 1e-4", p)
	}
}
