package pool

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// reader decodes a chunk's values of one type V: through the fast path
// when V has one, else with msgpack's Decoder over the same bytes. It
// belongs to one goroutine and is reused from chunk to chunk.
type reader[V any] struct {
	fast bool
	w    wire
	in   bytes.Reader
	dec  *msgpack.Decoder

	u64  arena[uint64]
	i64  arena[int64]
	ints arena[int]
	strs arena[string]
}

func newReader[V any]() *reader[V] {
	r := &reader[V]{fast: fastType[V]()}
	r.dec = msgpack.NewDecoder(&r.in)
	return r
}

// reset starts reading data. Data for msgpack's Decoder, which recurses
// once per level, is refused if it nests too deeply (the fast path reads
// no nested values).
func (r *reader[V]) reset(data []byte) error {
	if r.fast {
		r.w.reset(data)
		return nil
	}
	r.in.Reset(nil)
	if err := checkDepth(data); err != nil {
		return err
	}
	r.in.Reset(data)
	r.dec.Reset(&r.in)
	return nil
}

// next decodes the next value into v; msgpack nil decodes to V's zero.
// Nothing v held before is reused: the fast path overwrites all of v, and
// the slow one zeroes it first, so that msgpack's Decoder does not decode
// into a slice or map the caller was given. (Zeroing in every case cost a
// second write barrier per value while the GC marks.)
func (r *reader[V]) next(v *V) error {
	if !r.fast {
		var zero V
		*v = zero
		return decodeValue(r.dec, v)
	}
	var err error
	switch p := any(v).(type) {
	case *uint64:
		if x, ok := r.w.smallUint(); ok { // up to 32 bits: inline
			*p = x
			return nil
		}
		var x int64
		x, err = r.w.int()
		*p = uint64(x)
	case *int:
		var x int64
		x, err = r.w.int()
		*p = int(x)
	case *int64:
		*p, err = r.w.int()
	case *uint:
		var x int64
		x, err = r.w.int()
		*p = uint(x)
	case *string:
		*p, err = r.w.str()
	case *[]uint64:
		*p, err = readInts(&r.w, &r.u64)
	case *[]int64:
		*p, err = readInts(&r.w, &r.i64)
	case *[]int:
		*p, err = readInts(&r.w, &r.ints)
	case *[]string:
		*p, err = readSlice(&r.w, &r.strs, r.w.str)
	default:
		panic(fmt.Sprintf("pool: fast read of %T", v)) // fastType said yes: a bug here
	}
	return err
}

// skip reads past a failed task's result, which is nil.
func (r *reader[V]) skip() error {
	if r.fast {
		return r.w.skipNil()
	}
	return r.dec.Skip()
}

// writer encodes values of one type V to a chunk's buffer, through the
// fast path when V has one.
type writer[V any] struct {
	fast bool
	buf  *bytes.Buffer
	enc  *msgpack.Encoder
}

func newWriter[V any](buf *bytes.Buffer, enc *msgpack.Encoder) writer[V] {
	return writer[V]{fast: fastType[V](), buf: buf, enc: enc}
}

func (w writer[V]) put(v V) error {
	if !w.fast {
		return encodeValue(w.enc, v)
	}
	w.buf.Write(appendFast(w.buf.AvailableBuffer(), v))
	return nil
}

func (w writer[V]) putNil() error {
	return w.buf.WriteByte(0xc0)
}
