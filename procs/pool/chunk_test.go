package pool

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestChunkSlice checks that a chunk split after a death holds exactly the
// tasks asked for, found by walking the chunk's bytes (the map keeps no
// offsets per task): values of every width, nested ones, and a point
// custom codec (two values back to back per task would break it).
func TestChunkSlice(t *testing.T) {
	tasks := []any{
		uint64(1), uint64(200), uint64(70000), uint64(1 << 40), int64(-5),
		"", "a string longer than thirty-one bytes, for a str8 header",
		[]uint64{2, 3, 1 << 33}, nil, map[string]any{"a": []any{1, "b", []int{}}},
		[]byte{1, 2, 3}, 3.5, true,
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for _, v := range tasks {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	c := &chunk{first: 100, n: len(tasks), data: buf.Bytes()}
	if err := c.index(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(tasks); i++ {
		for j := i; j <= len(tasks); j++ {
			part := c.slice(i, j)
			if part.first != 100+i || part.n != j-i {
				t.Fatalf("slice(%d, %d): first %d n %d", i, j, part.first, part.n)
			}
			dec := msgpack.NewDecoder(bytes.NewReader(part.data))
			for k := range part.n {
				got, err := dec.DecodeInterface()
				if err != nil {
					t.Fatalf("slice(%d, %d): task %d: %v", i, j, k, err)
				}
				var want any
				b, _ := msgpack.Marshal(tasks[i+k])
				if err := msgpack.Unmarshal(b, &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("slice(%d, %d): task %d is %#v, want %#v", i, j, k, got, want)
				}
			}
			if _, err := dec.DecodeInterface(); err == nil {
				t.Fatalf("slice(%d, %d): more than %d values", i, j, part.n)
			}
		}
	}
}

// TestChunkIndexRefuses checks that a chunk whose bytes do not hold its
// number of tasks is refused rather than split wrong.
func TestChunkIndexRefuses(t *testing.T) {
	for _, c := range []*chunk{
		{n: 3, data: []byte{1, 2}},          // too few values
		{n: 1, data: []byte{1, 2}},          // too many
		{n: 1, data: []byte{0x92, 1}},       // cut short
		{n: 2, data: []byte{0xcd, 1, 0xc1}}, // cut short, then a code never used
	} {
		if err := c.index(); err == nil {
			t.Errorf("index of %d tasks in % x: no error, offsets %v", c.n, c.data, c.offs)
		}
	}
}
