package pool

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// fuzzRead reads values of type V from data until it is used up or an
// error, through the reader the map and the worker use, and, for a type
// with a fast path, checks each value against msgpack's own decoder over
// the same bytes wherever both accept it.
func fuzzRead[V any](t *testing.T, data []byte) {
	rd := newReader[V]()
	if err := rd.reset(data); err != nil {
		return
	}
	slow := msgpack.NewDecoder(bytes.NewReader(data))
	for range len(data) + 1 {
		if rd.fast && rd.w.left() == 0 {
			return
		}
		var v, w V
		err := rd.next(&v)
		if !rd.fast {
			if err != nil || rd.in.Len() == 0 {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		if serr := decodeValue(slow, &w); serr != nil {
			return // msgpack is stricter here: nothing to compare from now on
		}
		if !reflect.DeepEqual(v, w) && !(isEmpty(v) && isEmpty(w)) {
			t.Fatalf("%T: fast path read %#v, msgpack %#v", v, v, w)
		}
	}
	t.Fatalf("%T: more values than bytes", *new(V))
}

// isEmpty treats a nil and an empty slice alike (the fast path hands out
// empty slices from its arena).
func isEmpty(v any) bool {
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Slice && r.Len() == 0
}

// FuzzChunkDecode feeds another process's bytes to every decoder of a
// chunk's tasks or results: the reader a map and a worker use (the fast
// paths, and msgpack's Decoder behind the depth check), and a worker's Raw
// and Typed handlers. None may panic, hang or overflow the stack.
func FuzzChunkDecode(f *testing.F) {
	var b []byte
	b = appendFast(b, uint64(1<<40))
	b = appendFast(b, []uint64{1, 2, 300, 1 << 33})
	b = appendFast(b, "hello")
	b = appendFast(b, []string{"a", "", "bc"})
	b = appendFast(b, -5)
	f.Add(b)
	f.Add(deep(100))
	f.Add(deep(maxDepth + 1))
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k', 0x91, 0xc0})
	f.Add([]byte{0xc7, 0x01, 0xff, 0x00})
	pt, _ := msgpack.Marshal(point{1, 2})
	f.Add(pt)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead[uint64](t, data)
		fuzzRead[int](t, data)
		fuzzRead[string](t, data)
		fuzzRead[[]uint64](t, data)
		fuzzRead[[]int64](t, data)
		fuzzRead[[]string](t, data)
		fuzzRead[any](t, data)
		fuzzRead[map[string]any](t, data)
		fuzzRead[point](t, data)
		_ = checkDepth(data)

		// A worker's Raw handler and Typed handler over a chunk of 3.
		var out bytes.Buffer
		enc := msgpack.NewEncoder(&out)
		raw := Raw(func(ctx context.Context, m msgpack.RawMessage) (msgpack.RawMessage, error) { return m, nil })
		_, _ = raw.run(t.Context(), data, 3, &out, enc, nil)
		out.Reset()
		typed := Typed(func(ctx context.Context, x []any) (int, error) { return len(x), nil })
		_, _ = typed.run(t.Context(), data, 3, &out, enc, nil)
	})
}
