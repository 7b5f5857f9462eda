package ipc

import (
	"encoding/binary"
	"fmt"
)

// MaxDepth is how deeply msgpack arrays and maps may nest inside a frame.
// msgpack's decoder (Skip too) recurses once per level, so an unbounded
// depth would let a frame of a few megabytes of 0x91 bytes overflow the
// receiver's stack, a fatal error no recover catches; a frame nested deeper
// than this is a bad frame instead, refused before anything decodes it.
const MaxDepth = 1000

// ErrTooDeep is matched (with errors.Is) by the *FrameError of a frame
// whose values nest deeper than MaxDepth.
var ErrTooDeep = fmt.Errorf("msgpack values nested over %d deep", MaxDepth)

// validate walks the msgpack values in frame without decoding them and
// checks that every length they announce (strings, binaries, extensions,
// arrays and maps) fits in the bytes that are left, and that arrays and
// maps nest at most MaxDepth deep. msgpack's decoder trusts those lengths
// when it sizes what it allocates, so a 5-byte frame could otherwise claim
// a four-billion-element array. After validate, whatever the decoder
// allocates is bounded by a small multiple of the frame's size, and its
// recursion by MaxDepth.
func validate(frame []byte) error {
	// open holds, for each array or map being walked, how many of its
	// values are still to come; its length is the current depth. It
	// starts on the stack and grows on the heap only for deep frames.
	var stack [16]int
	open := stack[:0]
	pos := 0
	for pos < len(frame) || len(open) > 0 {
		if pos >= len(frame) {
			return fmt.Errorf("msgpack value cut short at byte %d", pos)
		}
		c := frame[pos]
		pos++
		var skip, items int // bytes of payload, child values
		var lenBytes int    // size of a length field that follows c
		switch {
		case c <= 0x7f || c >= 0xe0: // fixints
		case c <= 0x8f:
			items = 2 * int(c&0x0f)
		case c <= 0x9f:
			items = int(c & 0x0f)
		case c <= 0xbf:
			skip = int(c & 0x1f)
		case c == 0xc0, c == 0xc2, c == 0xc3:
		case c == 0xc1:
			return fmt.Errorf("msgpack code 0xc1 (never used) at byte %d", pos-1)
		case c == 0xc4, c == 0xd9:
			lenBytes = 1
		case c == 0xc5, c == 0xda:
			lenBytes = 2
		case c == 0xc6, c == 0xdb:
			lenBytes = 4
		case c == 0xc7:
			lenBytes, skip = 1, 1 // + type byte
		case c == 0xc8:
			lenBytes, skip = 2, 1
		case c == 0xc9:
			lenBytes, skip = 4, 1
		case c == 0xca, c == 0xce, c == 0xd2:
			skip = 4
		case c == 0xcb, c == 0xcf, c == 0xd3:
			skip = 8
		case c == 0xcc, c == 0xd0:
			skip = 1
		case c == 0xcd, c == 0xd1:
			skip = 2
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4) // type byte + 1, 2, 4, 8 or 16
		case c == 0xdc:
			lenBytes = 2
		case c == 0xdd:
			lenBytes = 4
		case c == 0xde:
			lenBytes = 2
		case c == 0xdf:
			lenBytes = 4
		}
		if lenBytes > 0 {
			if len(frame)-pos < lenBytes {
				return fmt.Errorf("msgpack length cut short at byte %d", pos)
			}
			var n uint64
			switch lenBytes {
			case 1:
				n = uint64(frame[pos])
			case 2:
				n = uint64(binary.BigEndian.Uint16(frame[pos:]))
			case 4:
				n = uint64(binary.BigEndian.Uint32(frame[pos:]))
			}
			pos += lenBytes
			if n > uint64(len(frame)) {
				return fmt.Errorf("msgpack length %d at byte %d is over the frame's %d bytes", n, pos, len(frame))
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
		if skip > len(frame)-pos {
			return fmt.Errorf("msgpack value at byte %d needs %d bytes, %d left", pos, skip, len(frame)-pos)
		}
		pos += skip
		// Every value takes at least one byte.
		if items > len(frame)-pos {
			return fmt.Errorf("msgpack container at byte %d claims %d values, %d bytes left", pos, items, len(frame)-pos)
		}
		if items > 0 {
			if len(open) >= MaxDepth {
				return fmt.Errorf("%w: at byte %d", ErrTooDeep, pos)
			}
			open = append(open, items)
			continue
		}
		// A value ended: so did every container it completes.
		for len(open) > 0 {
			if open[len(open)-1]--; open[len(open)-1] > 0 {
				break
			}
			open = open[:len(open)-1]
		}
	}
	return nil
}
