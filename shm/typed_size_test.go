package shm

import (
	"fmt"
	"math"
	"testing"
)

// TestArraySizeOverflow: lengths whose byte size does not fit in an int are
// refused, never wrapped to a small size that passes the bounds check
// (issue 15, finding 8: ArraySize(TypeInt64, 1<<61) was 32).
func TestArraySizeOverflow(t *testing.T) {
	for _, tc := range []struct {
		t ElemType
		n int
	}{
		{TypeInt64, 1 << 61},
		{TypeInt64, 1<<60 + 1},
		{TypeUint32, 1 << 62},
		{TypeBytes, math.MaxInt},
		{TypeBytes, math.MaxInt - 3},
	} {
		if got := ArraySize(tc.t, tc.n); got < tc.n {
			t.Errorf("ArraySize(%s, %d) = %d, want no less than the length", tc.t, tc.n, got)
		}
	}
	for _, n := range []int{1 << 61, 1<<61 + 3, math.MaxInt / 8, math.MaxInt} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			if a, err := MakeArray[int64](Local(64), 0, n); err == nil {
				t.Fatalf("MakeArray[int64](64 bytes, %d) made an array of %d values", n, a.Len())
			}
			if a, err := MakeArray[uint32](Local(64), 0, n); err == nil {
				t.Fatalf("MakeArray[uint32](64 bytes, %d) made an array of %d values", n, a.Len())
			}
			if b, err := MakeBytes(Local(64), 0, n); err == nil {
				t.Fatalf("MakeBytes(64 bytes, %d) made %d bytes", n, b.Len())
			}
		})
	}
}
