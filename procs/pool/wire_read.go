package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// errWire reports msgpack the fast path cannot read as the wanted type.
var errWire = errors.New("malformed value")

// wire reads msgpack values from a chunk's bytes. The bytes come from
// another process: every length is checked against what is left.
//
// It moves through b by an index, not by slicing b: a wire lives in a
// reader on the heap, where storing a re-sliced b stores a pointer, and
// while the GC marks (most of a map's time, in a parent that allocates a
// slice per result) every such store goes through the write barrier:
// that was a third of decoding a chunk of factor results.
type wire struct {
	b   []byte
	pos int // b[pos:] is what is left
}

// reset starts reading b.
func (w *wire) reset(b []byte) { w.b, w.pos = b, 0 }

// left returns how many bytes are left.
func (w *wire) left() int { return len(w.b) - w.pos }

func (w *wire) byte() (byte, error) {
	if w.pos >= len(w.b) {
		return 0, io.ErrUnexpectedEOF
	}
	c := w.b[w.pos]
	w.pos++
	return c, nil
}

func (w *wire) take(n int) ([]byte, error) {
	if n < 0 || n > w.left() {
		return nil, io.ErrUnexpectedEOF
	}
	p := w.b[w.pos : w.pos+n : w.pos+n]
	w.pos += n
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

// smallUint reads an unsigned integer of up to 32 bits, the commonest
// tasks and results, if that is what comes next (else ok is false and
// nothing is read).
func (w *wire) smallUint() (x uint64, ok bool) {
	b := w.b[w.pos:]
	if len(b) == 0 {
		return 0, false
	}
	switch c := b[0]; {
	case c <= 0x7f:
		w.pos++
		return uint64(c), true
	case c == 0xcc && len(b) >= 2:
		w.pos += 2
		return uint64(b[1]), true
	case c == 0xcd && len(b) >= 3:
		w.pos += 3
		return uint64(binary.BigEndian.Uint16(b[1:3])), true
	case c == 0xce && len(b) >= 5:
		w.pos += 5
		return uint64(binary.BigEndian.Uint32(b[1:5])), true
	}
	return 0, false
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
	if n > uint64(w.left()) {
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
	if n > uint64(w.left()) {
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
// the unsigned integers up to 32 bits (most factors, most numbers) read
// inline.
func readInts[E int | int64 | uint64](w *wire, a *arena[E]) ([]E, error) {
	n, err := w.arrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	s := a.slice(n)
	b := w.b[w.pos:]
	for i := range s {
		if len(b) == 0 {
			return nil, io.ErrUnexpectedEOF
		}
		switch c := b[0]; {
		case c <= 0x7f:
			s[i] = E(c)
			b = b[1:]
			continue
		case c == 0xcc && len(b) >= 2:
			s[i] = E(b[1])
			b = b[2:]
			continue
		case c == 0xcd && len(b) >= 3:
			s[i] = E(binary.BigEndian.Uint16(b[1:3]))
			b = b[3:]
			continue
		case c == 0xce && len(b) >= 5:
			s[i] = E(binary.BigEndian.Uint32(b[1:5]))
			b = b[5:]
			continue
		}
		w.pos = len(w.b) - len(b)
		x, err := w.int()
		if err != nil {
			return nil, err
		}
		b = w.b[w.pos:]
		s[i] = E(x)
	}
	w.pos = len(w.b) - len(b)
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

// maxDepth bounds how deeply the values the pool decodes with msgpack's
// Decoder may nest (the limit of encoding/json). That decoder, and its
// Skip, recurse once per level, and a stack overflow ends the process
// whatever recovers: two million one-element arrays in 2 MB would.
const maxDepth = 10000

// checkDepth walks the msgpack values in b without decoding them, and
// refuses one nested more than maxDepth deep, or cut short. Lengths are
// checked against what is left, as wire's readers do.
func checkDepth(b []byte) error { return walk(b, nil) }

// walk is checkDepth that also calls top, if not nil, with the position
// of each value of b that is not inside another.
func walk(b []byte, top func(pos int)) error {
	var open []int // values still to read in each open array or map
	for pos := 0; pos < len(b); {
		if top != nil && len(open) == 0 {
			top(pos)
		}
		c := b[pos]
		pos++
		var skip, lenBytes int
		items := 0
		switch {
		case c <= 0x7f || c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c <= 0x8f:
			items = 2 * int(c&0x0f)
		case c <= 0x9f:
			items = int(c & 0x0f)
		case c <= 0xbf:
			skip = int(c & 0x1f)
		case c == 0xc4, c == 0xd9:
			lenBytes = 1
		case c == 0xc5, c == 0xda:
			lenBytes = 2
		case c == 0xc6, c == 0xdb:
			lenBytes = 4
		case c == 0xc7, c == 0xc8, c == 0xc9:
			lenBytes, skip = 1<<(c-0xc7), 1 // + the type byte
		case c == 0xca, c == 0xce, c == 0xd2:
			skip = 4
		case c == 0xcb, c == 0xcf, c == 0xd3:
			skip = 8
		case c == 0xcc, c == 0xd0:
			skip = 1
		case c == 0xcd, c == 0xd1:
			skip = 2
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4) // the type byte + 1, 2, 4, 8 or 16
		case c == 0xdc, c == 0xde:
			lenBytes = 2
		case c == 0xdd, c == 0xdf:
			lenBytes = 4
		default: // 0xc1, never used
			return fmt.Errorf("%w: code %#x", errWire, c)
		}
		if lenBytes > 0 {
			if len(b)-pos < lenBytes {
				return io.ErrUnexpectedEOF
			}
			var n uint64
			for _, x := range b[pos : pos+lenBytes] {
				n = n<<8 | uint64(x)
			}
			pos += lenBytes
			if n > uint64(len(b)-pos) {
				return io.ErrUnexpectedEOF // every element takes a byte at least
			}
			switch c {
			case 0xdc, 0xdd:
				items = int(n)
			case 0xde, 0xdf:
				items = 2 * int(n)
			default:
				skip += int(n)
			}
		}
		if skip > len(b)-pos {
			return io.ErrUnexpectedEOF
		}
		pos += skip
		if len(open) > 0 {
			open[len(open)-1]--
		}
		if items > 0 {
			if len(open) == maxDepth {
				return fmt.Errorf("%w: nested over %d deep", errWire, maxDepth)
			}
			open = append(open, items)
		}
		for len(open) > 0 && open[len(open)-1] == 0 {
			open = open[:len(open)-1]
		}
	}
	if len(open) > 0 {
		return io.ErrUnexpectedEOF
	}
	return nil
}
