package base

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseSize parses a byte count such as 4096, 64K, 64KiB, 1.5M or 1G. K,
// M, G and T and their KiB, MiB, GiB and TiB spellings are powers of 1024;
// KB, MB, GB and TB are powers of 1000; a trailing B alone means bytes.
// Case does not matter; a fraction must come to a whole number of bytes
// within 2^62.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
		{"b", 1},
	} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	bad := fmt.Errorf("size %q: want a byte count such as 4096, 64K, 1.5M or 1GiB", s)
	if t == "" || strings.ContainsAny(t, "einx_+") {
		return 0, bad
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || float64(n)*mult > 1<<62 {
			return 0, fmt.Errorf("size %q: out of range 0..4EiB", s)
		}
		return n * int64(mult), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) {
		return 0, bad
	}
	if f*mult > 1<<62 {
		return 0, fmt.Errorf("size %q: out of range 0..4EiB", s)
	}
	return int64(math.Round(f * mult)), nil
}

// FormatSize formats a byte count with a binary unit when it is a whole
// number of them (64KiB, 1MiB), and as bytes with separators otherwise
// (65,537B).
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return Count(n) + "B"
}

// Count formats n with thousands separators: 1,048,576.
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Human formats a duration for prose: 1.5 µs, 240 ms, 3.2 s.
func Human(d time.Duration) string {
	switch a := math.Abs(float64(d)); {
	case a < 1e3:
		return fmt.Sprintf("%d ns", d)
	case a < 1e6:
		return fmt.Sprintf("%.3g µs", float64(d)/1e3)
	case a < 1e9:
		return fmt.Sprintf("%.3g ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3g s", d.Seconds())
}
