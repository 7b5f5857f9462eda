package pool

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The fast path: for the commonest task and result types (int, int64,
// uint64, uint, string and slices of them) the pool reads and writes
// msgpack itself, straight from and to the chunk's bytes, instead of
// through msgpack's Encoder and Decoder, which cost a method call per byte.
// Profiled on the factor lab (uint64 tasks, []uint64 results), that was
// most of the pool's own cost per task. The bytes are the same msgpack
// either way, so each side may use either path.

// fastType reports whether V has a fast path.
func fastType[V any]() bool {
	var v V
	switch any(v).(type) {
	case int, int64, uint64, uint, string, []uint64, []int64, []int, []string:
		return true
	}
	return false
}

// appendFast appends the msgpack encoding of v, whose type has a fast
// path, to b, in the compact form msgpack's Encoder writes.
func appendFast[V any](b []byte, v V) []byte {
	switch x := any(v).(type) {
	case int:
		return appendInt(b, int64(x))
	case int64:
		return appendInt(b, x)
	case uint64:
		return appendUint(b, x)
	case uint:
		return appendUint(b, uint64(x))
	case string:
		return appendString(b, x)
	case []uint64:
		if x != nil && len(x) <= 15 { // a short list of numbers: no calls
			b = append(b, 0x90|byte(len(x)))
			for _, e := range x {
				if e <= 0x7f {
					b = append(b, byte(e))
				} else {
					b = appendUint(b, e)
				}
			}
			return b
		}
		return appendSlice(b, x, appendUint)
	case []int64:
		return appendSlice(b, x, appendInt)
	case []int:
		return appendSlice(b, x, func(b []byte, i int) []byte { return appendInt(b, int64(i)) })
	case []string:
		return appendSlice(b, x, appendString)
	}
	panic(fmt.Sprintf("pool: appendFast of %T", v)) // fastType said yes: a bug here
}

func appendUint(b []byte, x uint64) []byte {
	switch {
	case x <= 0x7f:
		return append(b, byte(x))
	case x <= math.MaxUint8:
		return append(b, 0xcc, byte(x))
	case x <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(x))
	case x <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(x))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), x)
}

func appendInt(b []byte, x int64) []byte {
	switch {
	case x >= 0:
		return appendUint(b, uint64(x))
	case x >= -32:
		return append(b, byte(x))
	case x >= math.MinInt8:
		return append(b, 0xd0, byte(x))
	case x >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(x))
	case x >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(x))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(x))
}

func appendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n <= 31:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func appendSlice[E any](b []byte, s []E, each func([]byte, E) []byte) []byte {
	if s == nil {
		return append(b, 0xc0)
	}
	n := len(s)
	switch {
	case n <= 15:
		b = append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
	}
	for _, e := range s {
		b = each(b, e)
	}
	return b
}
