package ipc

import (
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
