package ipc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// nested returns depth one-element arrays around a nil: 0x91 × depth, 0xc0.
func nested(depth int) []byte {
	return append(bytes.Repeat([]byte{0x91}, depth), 0xc0)
}

// TestDeepFrame sends a frame of 2,000,000 nested one-element arrays (2 MB)
// to Recv into an any. Without a depth limit msgpack's decoder recurses
// once per level and the receiving process dies of a stack overflow, which
// no recover catches; with it, the frame is a bad frame and the Conn reads
// on.
func TestDeepFrame(t *testing.T) {
	for _, network := range []Network{Stream, SeqPacket} {
		t.Run("network="+string(network), func(t *testing.T) {
			a, bf, err := Pair(network)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := FileConn(bf)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			depth := 2_000_000
			if network == SeqPacket {
				// A datagram must fit in the socket's send buffer
				// (wmem_max, 208 KiB by default).
				depth = 100_000
			}
			deep := nested(depth)
			sent := make(chan error, 1)
			go func() {
				if _, err := b.nc.Write(frameBytes(network, deep)); err != nil {
					sent <- err
					return
				}
				sent <- b.Send("after")
			}()
			var v any
			err = a.Recv(&v)
			if !errors.Is(err, ErrTooDeep) {
				t.Fatalf("Recv of a frame nested %d deep = %v, want ErrTooDeep", depth, err)
			}
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("Recv of a too-deep frame = %T, want a *FrameError", err)
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			if err := a.Recv(&v); err != nil || v != "after" {
				t.Fatalf("Recv after the deep frame = %v, %v; want \"after\"", v, err)
			}
		})
	}
}

// frameBytes returns body as the bytes of one frame on network.
func frameBytes(network Network, body []byte) []byte {
	if network == SeqPacket {
		return body
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestValidateDepth(t *testing.T) {
	deepMap := func(depth int) []byte { // {"": {"": ... nil}}
		return append(bytes.Repeat([]byte{0x81, 0xa0}, depth), 0xc0)
	}
	cases := []struct {
		name  string
		frame []byte
		ok    bool
	}{
		{"arrays-at-max", nested(MaxDepth), true},
		{"arrays-over-max", nested(MaxDepth + 1), false},
		{"maps-at-max", deepMap(MaxDepth), true},
		{"maps-over-max", deepMap(MaxDepth + 1), false},
		// Two values at MaxDepth side by side: depth, not size, counts.
		{"two-at-max", append(nested(MaxDepth), nested(MaxDepth)...), true},
		// Wide, not deep: an array of MaxDepth+1 empty arrays.
		{"wide", append(binary.BigEndian.AppendUint16([]byte{0xdc}, MaxDepth+1), bytes.Repeat([]byte{0x90}, MaxDepth+1)...), true},
		{"cut-inside", nested(5)[:5], false},
	}
	for _, tc := range cases {
		t.Run("case="+tc.name, func(t *testing.T) {
			err := validate(tc.frame)
			if (err == nil) != tc.ok {
				t.Fatalf("validate = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				return
			}
			// What validate accepts, msgpack decodes.
			dec := msgpack.NewDecoder(bytes.NewReader(tc.frame))
			for {
				var v any
				if err := dec.Decode(&v); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("decode: %v", err)
				}
			}
		})
	}
	if err := validate(nested(MaxDepth + 1)); !errors.Is(err, ErrTooDeep) {
		t.Errorf("validate of a frame over MaxDepth = %v, want ErrTooDeep", err)
	}
}

// FuzzValidate checks validate against msgpack's own decoder: a frame that
// validate accepts decodes (into any, value after value) without a panic,
// whatever its bytes, and every frame that msgpack encodes from a value
// within MaxDepth is accepted.
func FuzzValidate(f *testing.F) {
	for _, v := range []any{
		nil, 1, -1, 1 << 40, "héllo", []byte{1, 2, 3}, 3.5, true,
		[]any{1, "a", []any{nil}}, map[string]any{"a": []int{1, 2}, "b": map[string]int{"c": 3}},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(nested(MaxDepth + 1))
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc7, 0x01, 0x05, 0x00}) // ext 8, type 5, one byte
	f.Add([]byte{0xd6, 0xff, 0, 0, 0, 1}) // a timestamp
	f.Fuzz(func(t *testing.T, frame []byte) {
		verr := validate(frame)
		if verr != nil {
			// validate refuses more than msgpack only where it means
			// to: nesting over MaxDepth, or the never-used code 0xc1.
			if errors.Is(verr, ErrTooDeep) || strings.Contains(verr.Error(), "0xc1") {
				return
			}
			rd := bytes.NewReader(frame)
			dec := msgpack.NewDecoder(rd)
			for rd.Len() > 0 {
				if err := dec.Skip(); err != nil {
					return // msgpack refuses it too
				}
			}
			t.Fatalf("validate refused a frame msgpack reads: %v", verr)
		}
		dec := msgpack.NewDecoder(bytes.NewReader(frame))
		for i := 0; ; i++ {
			var v any
			if err := dec.Decode(&v); err != nil {
				return // EOF, or a well-sized value msgpack still refuses (a bad timestamp, say)
			}
			if i > len(frame) {
				t.Fatalf("decoded %d values from %d bytes", i, len(frame))
			}
		}
	})
}
