package pool

import (
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// encodeValue encodes v as enc.Encode would, taking a direct path for the
// common scalar types, slices of ints and strings, and
// msgpack.CustomEncoder implementations, which
// skips msgpack's reflection-based lookup: per task, that lookup costs as
// much as a small task's work.
func encodeValue[V any](enc *msgpack.Encoder, v V) error {
	if ok, err := encodeScalar(enc, v); ok {
		return err
	}
	if x, ok := any(v).(msgpack.CustomEncoder); ok {
		return x.EncodeMsgpack(enc)
	}
	return enc.Encode(v)
}

// encodeScalar encodes v if it is one of the common scalar types. It is a
// function of its own so that v, which does not escape here, is not boxed
// on the heap for the scalar cases.
func encodeScalar[V any](enc *msgpack.Encoder, v V) (bool, error) {
	switch x := any(v).(type) {
	case int:
		return true, enc.EncodeInt(int64(x))
	case int64:
		return true, enc.EncodeInt(x)
	case uint64:
		return true, enc.EncodeUint(x)
	case uint:
		return true, enc.EncodeUint(uint64(x))
	case string:
		return true, enc.EncodeString(x)
	case bool:
		return true, enc.EncodeBool(x)
	case float64:
		return true, enc.EncodeFloat64(x)
	case []uint64:
		return true, encodeSlice(enc, x, enc.EncodeUint)
	case []int64:
		return true, encodeSlice(enc, x, enc.EncodeInt)
	case []int:
		return true, encodeSlice(enc, x, func(i int) error { return enc.EncodeInt(int64(i)) })
	case []string:
		return true, encodeSlice(enc, x, enc.EncodeString)
	}
	return false, nil
}

// encodeSlice encodes s as msgpack encodes a slice: nil as nil, else an
// array of its elements.
func encodeSlice[E any](enc *msgpack.Encoder, s []E, each func(E) error) error {
	if s == nil {
		return enc.EncodeNil()
	}
	if err := enc.EncodeArrayLen(len(s)); err != nil {
		return err
	}
	for _, e := range s {
		if err := each(e); err != nil {
			return err
		}
	}
	return nil
}

// decodeSlice decodes what encodeSlice encodes, or any msgpack array of
// elements each reads.
func decodeSlice[E any](dec *msgpack.Decoder, p *[]E, each func() (E, error)) error {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		*p = nil
		return err
	}
	// The length comes from the peer, inside a byte string that ipc's
	// frame check does not look into: grow as elements actually arrive
	// rather than trust it with one allocation.
	s := make([]E, 0, min(n, 1024))
	for range n {
		e, err := each()
		if err != nil {
			return err
		}
		s = append(s, e)
	}
	*p = s
	return nil
}

// decodeValue decodes into v as dec.Decode would, with the direct paths of
// encodeValue. A msgpack nil decodes to V's zero value.
func decodeValue[V any](dec *msgpack.Decoder, v *V) error {
	switch p := any(v).(type) {
	case *int:
		x, err := dec.DecodeInt()
		*p = x
		return err
	case *int64:
		x, err := dec.DecodeInt64()
		*p = x
		return err
	case *uint64:
		x, err := dec.DecodeUint64()
		*p = x
		return err
	case *uint:
		x, err := dec.DecodeUint()
		*p = x
		return err
	case *string:
		x, err := dec.DecodeString()
		*p = x
		return err
	case *bool:
		x, err := dec.DecodeBool()
		*p = x
		return err
	case *float64:
		x, err := dec.DecodeFloat64()
		*p = x
		return err
	case *[]uint64:
		return decodeSlice(dec, p, dec.DecodeUint64)
	case *[]int64:
		return decodeSlice(dec, p, dec.DecodeInt64)
	case *[]int:
		return decodeSlice(dec, p, dec.DecodeInt)
	case *[]string:
		return decodeSlice(dec, p, dec.DecodeString)
	case msgpack.CustomDecoder:
		c, err := dec.PeekCode()
		if err != nil {
			return err
		}
		if c == msgpcode.Nil {
			var zero V
			*v = zero
			return dec.DecodeNil()
		}
		return p.DecodeMsgpack(dec)
	}
	return dec.Decode(v)
}
