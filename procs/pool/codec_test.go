package pool

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// point has a custom codec, to check the direct path through it.
type point struct{ X, Y int }

func (p point) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeInt(int64(p.X)); err != nil {
		return err
	}
	return enc.EncodeInt(int64(p.Y))
}

func (p *point) DecodeMsgpack(dec *msgpack.Decoder) error {
	var err error
	if p.X, err = dec.DecodeInt(); err != nil {
		return err
	}
	p.Y, err = dec.DecodeInt()
	return err
}

func roundTrip[V any](t *testing.T, v V) {
	t.Helper()
	var buf bytes.Buffer
	if err := encodeValue(msgpack.NewEncoder(&buf), v); err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	// What encodeValue wrote, msgpack's own decoder reads, and back.
	var std V
	if err := msgpack.Unmarshal(buf.Bytes(), &std); err != nil || !reflect.DeepEqual(std, v) {
		t.Errorf("msgpack.Unmarshal of %#v: %#v, %v", v, std, err)
	}
	var got V
	if err := decodeValue(msgpack.NewDecoder(bytes.NewReader(buf.Bytes())), &got); err != nil || !reflect.DeepEqual(got, v) {
		t.Errorf("decodeValue of %#v: %#v, %v", v, got, err)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	roundTrip(t, 0)
	roundTrip(t, -12345)
	roundTrip(t, int64(-1)<<40)
	roundTrip(t, uint64(1)<<63)
	roundTrip(t, uint(7))
	roundTrip(t, "héllo")
	roundTrip(t, true)
	roundTrip(t, 2.5)
	roundTrip(t, point{3, -4})
	roundTrip(t, []string{"a", "b"})
	roundTrip(t, []uint64{2, 2, 1 << 40})
	roundTrip(t, []uint64{})
	roundTrip(t, []uint64(nil))
	roundTrip(t, []int64{-1, 5})
	roundTrip(t, []int{-300, 0, 70000})
	roundTrip(t, map[string]int{"x": 1})
}

func TestDecodeNilCustom(t *testing.T) {
	b, _ := msgpack.Marshal(nil)
	p := point{1, 2}
	if err := decodeValue(msgpack.NewDecoder(bytes.NewReader(b)), &p); err != nil || p != (point{}) {
		t.Errorf("nil into a custom decoder: %#v, %v", p, err)
	}
}

func TestDecodeSliceLengthLie(t *testing.T) {
	// An array header claiming 2^32-1 elements, then none: an error, not a
	// 32 GiB allocation.
	b := []byte{0xdd, 0xff, 0xff, 0xff, 0xff}
	var s []uint64
	if err := decodeValue(msgpack.NewDecoder(bytes.NewReader(b)), &s); err == nil {
		t.Errorf("decoded %d elements from a lying header", len(s))
	}
}

// fastRoundTrip checks the fast path against msgpack's own encoder and
// decoder in both directions.
func fastRoundTrip[V any](t *testing.T, v V) {
	t.Helper()
	if !fastType[V]() {
		t.Fatalf("%T has no fast path", v)
	}
	b := appendFast(nil, v)
	var std V
	if err := msgpack.Unmarshal(b, &std); err != nil || !reflect.DeepEqual(std, v) {
		t.Errorf("msgpack.Unmarshal of fast %#v: %#v, %v", v, std, err)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Errorf("fast encoding of %#v = %x, msgpack's %x", v, b, buf.Bytes())
	}
	for _, in := range [][]byte{b, buf.Bytes()} {
		r := newReader[V]()
		r.reset(in)
		var got V
		if err := r.next(&got); err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("fast read of %#v: %#v, %v", v, got, err)
		}
		if r.w.left() != 0 {
			t.Errorf("fast read of %#v left %d bytes", v, r.w.left())
		}
	}
}

func TestFastRoundTrip(t *testing.T) {
	for _, x := range []int64{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, -1, -32, -33, -128, -129, -32768, -32769, -1 << 31, -1<<31 - 1, -1 << 63, 1<<63 - 1} {
		fastRoundTrip(t, x)
		fastRoundTrip(t, int(x))
		if x >= 0 {
			fastRoundTrip(t, uint64(x))
			fastRoundTrip(t, uint(x))
		}
	}
	fastRoundTrip(t, uint64(1)<<63)
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		fastRoundTrip(t, strings.Repeat("é", n/2)+strings.Repeat("x", n%2))
	}
	fastRoundTrip(t, []uint64{2, 2, 1 << 40})
	fastRoundTrip(t, []uint64{})
	fastRoundTrip(t, []uint64(nil))
	fastRoundTrip(t, make([]uint64, 70000))
	fastRoundTrip(t, []int64{-1, 5})
	fastRoundTrip(t, []int{-300, 0, 70000})
	fastRoundTrip(t, make([]int, 16))
	fastRoundTrip(t, []string{"a", "", "bc"})
}

func TestFastReadRejects(t *testing.T) {
	for _, b := range [][]byte{
		{},                             // nothing
		{0xcd, 0x01},                   // uint16 cut short
		{0xdd, 0xff, 0xff, 0xff, 0xff}, // array header lying about its length
		{0xdc, 0x00, 0x03, 0x01, 0x02}, // array of 3 with 2
		{0x92, 0xa1, 0x01},             // a string inside an integer array
		{0xdb, 0x7f, 0xff, 0xff, 0xff}, // string header lying about its length
	} {
		r := newReader[[]uint64]()
		r.reset(b)
		var got []uint64
		if err := r.next(&got); err == nil {
			t.Errorf("fast read of %x = %v, want an error", b, got)
		}
	}
	r := newReader[string]()
	r.reset([]byte{0xdb, 0x7f, 0xff, 0xff, 0xff})
	var s string
	if err := r.next(&s); err == nil {
		t.Errorf("fast read of a lying string header: %d bytes", len(s))
	}
}

// TestArenaSlicesApart checks that results carved from one allocation do
// not share memory: appending to one leaves the next alone.
func TestArenaSlicesApart(t *testing.T) {
	b := appendFast(appendFast(nil, []uint64{1, 2}), []uint64{3, 4})
	r := newReader[[]uint64]()
	r.reset(b)
	var x, y []uint64
	if err := r.next(&x); err != nil {
		t.Fatal(err)
	}
	if err := r.next(&y); err != nil {
		t.Fatal(err)
	}
	_ = append(x, 99)
	if y[0] != 3 {
		t.Errorf("appending to one result changed the next: %v", y)
	}
}
