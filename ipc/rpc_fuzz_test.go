package ipc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzHandshake feeds arbitrary bytes to one side of a handshake, as what
// its peer sent: to the server when asClient is false, to the client
// otherwise. The handshake must fail with an *AuthError (the bytes cannot
// hold a MAC over a nonce chosen after they were written), and never panic
// or hang.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 0x92, 0xc0, 0xc0}, false)               // a proof of nils
	f.Add([]byte{0, 0, 0, 5, 0x92, 0xc4, 0, 0xc4, 0}, false)         // empty MAC, empty nonce
	f.Add([]byte{0, 0, 0, 4, 0x92, 0x01, 0xc4, 0x20}, true)          // a hello cut short
	f.Add([]byte{0, 0, 0, 6, 0x92, 0xc0, 0xa3, 'b', 'a', 'd'}, true) // a rejection
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, false)                     // a huge length
	f.Fuzz(func(t *testing.T, data []byte, asClient bool) {
		a, fb, err := Pair(Stream)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		peer, err := FileConn(fb)
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		if len(data) > 32<<10 {
			data = data[:32<<10] // stay within the socket buffer
		}
		if _, err := peer.nc.Write(data); err != nil {
			t.Fatal(err)
		}
		peer.nc.CloseWrite()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if asClient {
			err = ClientHandshake(ctx, a, testKey, time.Second, 0)
		} else {
			err = ServerHandshake(ctx, a, AuthConfig{Key: testKey, Timeout: time.Second})
		}
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("handshake on fuzzed bytes: %v, want an *AuthError", err)
		}
		if errors.Is(err, ErrHandshakeTimeout) {
			t.Fatalf("handshake timed out on bytes followed by EOF: %v", err)
		}
		if a.MaxFrame() != authMaxFrame {
			t.Fatalf("frame limit raised to %d after a failed handshake", a.MaxFrame())
		}
	})
}

// fuzzServer is a server whose functions are safe to call with any
// arguments (no sleeping, no allocating what a caller asks for).
func fuzzServer() *Server {
	s := NewServer(ServerConfig{Auth: AuthConfig{Key: testKey}})
	s.Register("add", func(ctx context.Context, p pair) (int, error) { return p.A + p.B, nil })
	s.Register("echo", func(ctx context.Context, v any) (any, error) { return v, nil })
	s.Register("fail", func(ctx context.Context, msg string) (struct{}, error) { return struct{}{}, errors.New(msg) })
	s.Register("panic", func(ctx context.Context, msg string) (int, error) { panic(msg) })
	s.Register("list", func(ctx context.Context, xs []int) (int, error) { return len(xs), nil })
	return s
}

// FuzzRequest feeds arbitrary frames to the server's request decoder and
// runs what it decodes: decoding, argument conversion, the call and the
// response's encoding must end in a response or an error, never a panic.
func FuzzRequest(f *testing.F) {
	f.Add([]byte{0x93, 1, 0xa3, 'a', 'd', 'd', 0x82, 0xa1, 'A', 2, 0xa1, 'B', 3})
	f.Add([]byte{0x93, 2, 0xa4, 'e', 'c', 'h', 'o', 0x91, 0xc0})
	f.Add([]byte{0x93, 3, 0xa5, 'p', 'a', 'n', 'i', 'c', 0xa1, 'x'})
	f.Add([]byte{0x93, 4, 0xa4, 'l', 'i', 's', 't', 0xdd, 0, 0, 0, 1, 1})
	f.Add([]byte{0x93, 5, 0xa3, 'a', 'd', 'd', 0xa1, 'x', 0x93, 6, 0xa4, 'f', 'a', 'i', 'l', 0xa1, 'y'})
	s := fuzzServer()
	f.Fuzz(func(t *testing.T, frame []byte) {
		if validate(frame) != nil {
			return // Conn never hands such a frame over
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for len(frame) > 0 {
			req, rest, err := parseRequest(frame)
			if err != nil {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("parseRequest: %v, want ErrBadRequest", err)
				}
				return
			}
			if len(rest) >= len(frame) {
				t.Fatalf("parseRequest consumed nothing of %d bytes", len(frame))
			}
			frame = rest
			resp := s.invoke(ctx, &req)
			if resp.id != req.ID {
				t.Fatalf("response id %d for request %d", resp.id, req.ID)
			}
			msgpack.Marshal(resp) // must not panic; an encoding error is a bad-result reply
		}
	})
}

// FuzzResponse feeds arbitrary frames to the client's response decoder,
// and each result it finds to the decoding a caller asks for (into an any,
// an int, a struct): an error or a value, never a panic, and every
// response consumes bytes.
func FuzzResponse(f *testing.F) {
	for _, r := range []*response{
		{id: 1, result: 3},
		{id: 2, code: CodeError, message: "disk on fire"},
		{id: 3, result: testMsg{Seq: 7, Body: "x"}},
		{id: 1 << 40, result: []any{1, "a", map[string]any{"b": nil}}},
	} {
		b, err := msgpack.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x94, 1, 0xa0, 0xa0, 0x03, 0x94, 2, 0xa0, 0xa0, 0xc0}) // two in one frame
	f.Add([]byte{0x93, 1, 0xa0, 0xa0})                                  // three elements
	f.Add([]byte{0x94, 0xa1, 'x', 0xa0, 0xa0, 0xc0})                    // id not a number
	f.Fuzz(func(t *testing.T, frame []byte) {
		if validate(frame) != nil {
			return // Conn never hands such a frame over
		}
		for len(frame) > 0 {
			resp, rest, err := parseResponse(frame)
			if err != nil {
				return
			}
			if len(rest) >= len(frame) {
				t.Fatalf("parseResponse consumed nothing of %d bytes", len(frame))
			}
			frame = rest
			var v any
			decodeResult(resp.Result, &v)
			var n int
			decodeResult(resp.Result, &n)
			var m testMsg
			decodeResult(resp.Result, &m)
		}
	})
}
