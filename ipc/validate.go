package ipc

import (
	"encoding/binary"
	"fmt"
)

// validate walks the msgpack values in frame without decoding them and
// checks that every length they announce (strings, binaries, extensions,
// arrays and maps) fits in the bytes that are left. msgpack's decoder trusts
// those lengths when it sizes what it allocates, so a 5-byte frame could
// otherwise claim a four-billion-element array. After validate, whatever the
// decoder allocates is bounded by a small multiple of the frame's size.
func validate(frame []byte) error {
	pos := 0
	for pos < len(frame) {
		pending := 1 // values still to read in the current top-level value
		for pending > 0 {
			if pos >= len(frame) {
				return fmt.Errorf("msgpack value cut short at byte %d", pos)
			}
			c := frame[pos]
			pos++
			pending--
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
			pending += items
		}
	}
	return nil
}
