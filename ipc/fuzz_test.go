package ipc

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzRecv feeds arbitrary bytes to a stream Conn with a small maximum
// frame size. Whatever arrives, Recv must return values or errors, never
// panic, and never grow its frame buffer past the maximum.
func FuzzRecv(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 0x93, 1, 2})             // one frame: [1 2 ...] cut inside the value
	f.Add([]byte{0, 0, 0, 2, 0x01, 0x02})             // one frame, two values
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})             // a length far over the maximum
	f.Add([]byte{0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff}) // array claiming 2^32 elements
	f.Add([]byte{0, 0, 0, 0})                         // an empty frame
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 10
		a, b, err := Pair(Stream)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		defer b.Close()
		a.SetMaxFrame(max)
		if len(data) > 64<<10 {
			data = data[:64<<10] // stay within the socket buffer: no writer goroutine
		}
		if _, err := b.Write(data); err != nil {
			t.Fatal(err)
		}
		b.Close()
		for range 1000 {
			var v any
			err := a.Recv(&v)
			if cap(a.rbuf) > max {
				t.Fatalf("frame buffer grew to %d bytes, over the %d maximum", cap(a.rbuf), max)
			}
			if err == io.EOF {
				return
			}
			var fe *FrameError
			if errors.As(err, &fe) {
				return // the stream cannot be trusted past a bad frame
			}
		}
	})
}

// FuzzRecvPacket sends arbitrary bytes as two datagrams (either may be
// empty) on a SOCK_SEQPACKET socket and closes it: Recv must return values
// or errors, never panic, never grow its buffer past the maximum, and
// reach io.EOF after a bounded number of calls (an empty datagram once read
// as io.EOF forever, and hid what followed it).
func FuzzRecvPacket(f *testing.F) {
	f.Add([]byte{0x01, 0x02}, uint16(1))
	f.Add([]byte{0x93, 1, 2, 3}, uint16(0))          // an empty datagram first
	f.Add([]byte{0x93, 1, 2, 3}, uint16(4))          // an empty datagram last
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff}, uint16(2)) // a container claiming too much
	f.Add(bytes.Repeat([]byte{0xa1, 'x'}, 600), uint16(300))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		const max = 1 << 10
		if len(data) > 32<<10 {
			data = data[:32<<10]
		}
		k := min(int(cut), len(data))
		a, b := connPair(t, SeqPacket)
		a.SetMaxFrame(max)
		sendRaw(t, b, data[:k])
		sendRaw(t, b, data[k:])
		b.Close()
		for range 2*len(data) + 10 {
			var v any
			err := a.Recv(&v)
			if cap(a.rbuf) > max {
				t.Fatalf("frame buffer grew to %d bytes, over the %d maximum", cap(a.rbuf), max)
			}
			if err == io.EOF {
				return
			}
		}
		t.Fatalf("no io.EOF after %d receives of two datagrams", 2*len(data)+10)
	})
}
