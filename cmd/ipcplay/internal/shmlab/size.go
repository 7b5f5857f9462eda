package shmlab

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize parses a byte count such as 4096, 64KiB, 8M or 1.5GiB. K, M and
// G and their KiB, MiB and GiB spellings are powers of 1024; KB, MB and GB
// are powers of 1000. A trailing B alone means bytes. Case does not matter.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
		{"b", 1},
	} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || n > (1<<62)/mult {
			return 0, fmt.Errorf("size %q: out of range", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 || t == "" || strings.ContainsAny(t, "einx") {
		return 0, fmt.Errorf("size %q: want a byte count such as 4096, 64KiB or 8M", s)
	}
	return int64(f * float64(mult)), nil
}

// FormatSize formats a byte count with a binary unit when it is a whole
// number of them.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}
