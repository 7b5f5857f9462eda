package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
)

// format shows a cell for the terminal.
func format(u Unit, v any) string {
	if v == nil {
		return "-"
	}
	switch u {
	case Int:
		if n, ok := toInt(v); ok {
			return base.Count(n)
		}
	case BigInt:
		switch n := v.(type) {
		case uint64:
			return strconv.FormatUint(n, 10)
		}
	case Bytes:
		if n, ok := toInt(v); ok {
			return base.FormatSize(n)
		}
	case Seconds, Millis, Micros, Nanos:
		if d, ok := v.(time.Duration); ok {
			return formatDuration(u, d)
		}
	case Ratio:
		if f, ok := toFloat(v); ok {
			return sig3(f) + "x"
		}
	case Percent:
		if f, ok := toFloat(v); ok {
			if f != 0 && math.Abs(f) < 0.1 {
				return fmt.Sprintf("%.2g%%", f)
			}
			return fmt.Sprintf("%.1f%%", f)
		}
	case Bool:
		if b, ok := v.(bool); ok {
			if b {
				return "yes"
			}
			return "no"
		}
	case MBps, GBps, Float:
		if f, ok := toFloat(v); ok {
			return sig3(f)
		}
	case PerSec:
		if f, ok := toFloat(v); ok {
			return metric(f)
		}
	}
	return fmt.Sprint(v)
}

// jsonValue is a cell as it goes into the JSON document.
func jsonValue(u Unit, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Duration:
		return int64(x)
	case uint64:
		if u == BigInt {
			return strconv.FormatUint(x, 10)
		}
		if x > 1<<53 {
			return strconv.FormatUint(x, 10)
		}
		return x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	}
	return v
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		if n <= math.MaxInt64 {
			return int64(n), true
		}
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	switch f := v.(type) {
	case float64:
		return f, !math.IsNaN(f) && !math.IsInf(f, 0)
	case float32:
		return float64(f), true
	}
	if n, ok := toInt(v); ok {
		return float64(n), true
	}
	return 0, false
}

// formatDuration shows d in unit u with three significant digits, or
// whole units once it is past 100.
func formatDuration(u Unit, d time.Duration) string {
	div := 1.0
	switch u {
	case Seconds:
		div = 1e9
	case Millis:
		div = 1e6
	case Micros:
		div = 1e3
	}
	return sig3(float64(d) / div)
}

// sig3 shows f with three significant digits, no exponent, and
// separators from 1,000 up.
func sig3(f float64) string {
	a := math.Abs(f)
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return base.Count(int64(math.Round(f)))
	case a >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(f, 'f', 2, 64)
	case a >= 1e-6:
		return strconv.FormatFloat(f, 'f', 3+int(-math.Floor(math.Log10(a)))-1, 64)
	}
	return strconv.FormatFloat(f, 'g', 3, 64)
}

// metric shows a rate with an SI suffix: 950, 12.3k, 4.56M, 1.2G.
func metric(f float64) string {
	a := math.Abs(f)
	switch {
	case a >= 1e9:
		return sig3(f/1e9) + "G"
	case a >= 1e6:
		return sig3(f/1e6) + "M"
	case a >= 1e4:
		return sig3(f/1e3) + "k"
	}
	return sig3(f)
}

// head is a column's header on the terminal: its Head in capitals, with
// the unit after it where the cells do not carry one (units keep their
// case: µs, MB/s).
func head(c Column) string {
	h := strings.ToUpper(c.Head)
	switch c.Unit {
	case PerSec:
		return h + "/s"
	case Seconds, Millis, Micros, Nanos, MBps, GBps:
		return h + " " + string(c.Unit)
	}
	return h
}

// numeric reports whether a column is right-aligned.
func numeric(u Unit) bool {
	switch u {
	case Text, Bool:
		return false
	}
	return true
}
