package pool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/vmihailenco/msgpack/v5"
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

// errWire reports msgpack the fast path cannot read as the wanted type.
var errWire = errors.New("malformed value")

// wire reads msgpack values from a chunk's bytes. The bytes come from
// another process: every length is checked against what is left.
type wire struct {
	b []byte
}

func (w *wire) byte() (byte, error) {
	if len(w.b) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	c := w.b[0]
	w.b = w.b[1:]
	return c, nil
}

func (w *wire) take(n int) ([]byte, error) {
	if n < 0 || n > len(w.b) {
		return nil, io.ErrUnexpectedEOF
	}
	p := w.b[:n:n]
	w.b = w.b[n:]
	return p, nil
}

func (w *wire) be(n int) (uint64, error) {
	p, err := w.take(n)
	if err != nil {
		return 0, err
	}
	var x uint64
	for _, c := range p {
		x = x<<8 | uint64(c)
	}
	return x, nil
}

// int reads any msgpack integer (or nil, as 0) as an int64; unsigned
// values above MaxInt64 wrap, as msgpack's DecodeInt64 does.
func (w *wire) int() (int64, error) {
	c, err := w.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	}
	switch c {
	case 0xc0:
		return 0, nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		x, err := w.be(1 << (c - 0xcc))
		return int64(x), err
	case 0xd0:
		x, err := w.be(1)
		return int64(int8(x)), err
	case 0xd1:
		x, err := w.be(2)
		return int64(int16(x)), err
	case 0xd2:
		x, err := w.be(4)
		return int64(int32(x)), err
	case 0xd3:
		x, err := w.be(8)
		return int64(x), err
	}
	return 0, fmt.Errorf("%w: code %#x where an integer belongs", errWire, c)
}

// str reads a msgpack string or binary (or nil, as "").
func (w *wire) str() (string, error) {
	c, err := w.byte()
	if err != nil {
		return "", err
	}
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == 0xc0:
		return "", nil
	case c == 0xd9 || c == 0xc4:
		n, err = w.be(1)
	case c == 0xda || c == 0xc5:
		n, err = w.be(2)
	case c == 0xdb || c == 0xc6:
		n, err = w.be(4)
	default:
		return "", fmt.Errorf("%w: code %#x where a string belongs", errWire, c)
	}
	if err != nil {
		return "", err
	}
	if n > uint64(len(w.b)) {
		return "", io.ErrUnexpectedEOF
	}
	p, _ := w.take(int(n))
	return string(p), nil
}

// arrayLen reads a msgpack array header: -1 for nil.
func (w *wire) arrayLen() (int, error) {
	c, err := w.byte()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), nil
	case c == 0xc0:
		return -1, nil
	case c == 0xdc:
		n, err = w.be(2)
	case c == 0xdd:
		n, err = w.be(4)
	default:
		return 0, fmt.Errorf("%w: code %#x where an array belongs", errWire, c)
	}
	if err != nil {
		return 0, err
	}
	// Every element takes a byte at least: a longer header lies.
	if n > uint64(len(w.b)) {
		return 0, io.ErrUnexpectedEOF
	}
	return int(n), nil
}

// skipNil reads the msgpack nil that stands for a failed task's result.
func (w *wire) skipNil() error {
	c, err := w.byte()
	if err != nil {
		return err
	}
	if c != 0xc0 {
		return fmt.Errorf("%w: code %#x where nil belongs", errWire, c)
	}
	return nil
}

// arena hands out slices carved from one larger allocation, so that
// decoding a chunk of slice results allocates once per few thousand
// elements rather than once per result. Each slice's capacity ends where
// it does, so appending to one never writes into another.
type arena[E any] struct{ free []E }

func (a *arena[E]) slice(n int) []E {
	if n == 0 {
		return []E{}
	}
	if n > cap(a.free)-len(a.free) {
		if n > 1024 {
			return make([]E, n)
		}
		a.free = make([]E, 0, 4096)
	}
	i := len(a.free)
	a.free = a.free[:i+n]
	return a.free[i : i+n : i+n]
}

// readInts reads a msgpack array of integers into a slice from a, with
// the one-byte integers (most factors, most small numbers) read inline.
func readInts[E int | int64 | uint64](w *wire, a *arena[E]) ([]E, error) {
	n, err := w.arrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	s := a.slice(n)
	for i := range s {
		if len(w.b) > 0 && w.b[0] <= 0x7f {
			s[i] = E(w.b[0])
			w.b = w.b[1:]
			continue
		}
		x, err := w.int()
		if err != nil {
			return nil, err
		}
		s[i] = E(x)
	}
	return s, nil
}

func readSlice[E any](w *wire, a *arena[E], each func() (E, error)) ([]E, error) {
	n, err := w.arrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	s := a.slice(n)
	for i := range s {
		if s[i], err = each(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

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

// reset starts reading data.
func (r *reader[V]) reset(data []byte) {
	if r.fast {
		r.w.b = data
		return
	}
	r.in.Reset(data)
	r.dec.Reset(&r.in)
}

// next decodes the next value into v; msgpack nil decodes to V's zero.
func (r *reader[V]) next(v *V) error {
	if !r.fast {
		return decodeValue(r.dec, v)
	}
	var err error
	switch p := any(v).(type) {
	case *uint64:
		if len(r.w.b) > 0 && r.w.b[0] <= 0x7f { // a small number: inline
			*p = uint64(r.w.b[0])
			r.w.b = r.w.b[1:]
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
