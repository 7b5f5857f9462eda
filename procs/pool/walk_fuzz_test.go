package pool

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzWalkSplitsAsMsgpack: walk, which finds where a chunk's tasks start
// for a death to split it, must find the boundaries msgpack's own Decoder
// finds between the top-level values of any bytes it accepts.
func FuzzWalkSplitsAsMsgpack(f *testing.F) {
	var b []byte
	b = appendFast(b, uint64(1<<40))
	b = appendFast(b, []uint64{1, 2, 300, 1 << 33})
	b = appendFast(b, "hello")
	b = appendFast(b, []string{"a", "", "bc"})
	b = appendFast(b, -5)
	f.Add(b)
	f.Add(deep(100))
	f.Add([]byte{0xc7, 0x01, 0xff, 0x00, 0xd4, 0x01, 0x02, 0xc0})
	for _, v := range []any{map[string]any{"a": []any{1, "b", 2.5}}, []byte{1, 2}, float32(1), true, nil, int64(-1 << 40)} {
		x, _ := msgpack.Marshal(v)
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var starts []int
		if err := walk(data, func(pos int) { starts = append(starts, pos) }); err != nil {
			return
		}
		in := bytes.NewReader(data)
		dec := msgpack.NewDecoder(in)
		for i, s := range starts {
			if pos := len(data) - in.Len(); pos != s {
				t.Fatalf("value %d: walk starts it at %d, msgpack at %d (% x)", i, s, pos, data)
			}
			if err := dec.Skip(); err != nil {
				t.Fatalf("value %d at %d: walk accepts, msgpack: %v (% x)", i, s, err, data)
			}
		}
		if in.Len() != 0 {
			t.Fatalf("walk found %d values, msgpack more (% x)", len(starts), data)
		}
	})
}
