package pool

import (
	"bytes"
	"reflect"
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
