package ipc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hangGuard is how long a test waits for something that must happen
// "promptly" before it calls it a hang. It bounds a hang, it does not
// measure speed: it is far above what a loaded machine needs.
const hangGuard = 20 * time.Second

// fakeRPCServer is the server end of an authenticated connection that the
// test drives by hand, and a Client on the other end.
type fakeRPCServer struct {
	s  *Conn   // the server's end
	cl *Client // a real client on the other end
}

// newFakeRPCServer authenticates both ends of a socket pair; the client's
// Conn accepts frames up to clientMax (zero: the default) and is tuned by
// tune, if set, before the Client takes it.
func newFakeRPCServer(t *testing.T, clientMax int, tune func(c *Conn)) *fakeRPCServer {
	t.Helper()
	s, c := authPair(t)
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ServerHandshake(ctx, s, AuthConfig{Key: testKey, MaxFrame: 16 << 20}) }()
	if err := ClientHandshake(ctx, c, testKey, 0, clientMax); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(c)
	}
	cl := NewClient(c)
	t.Cleanup(func() { cl.Close() })
	return &fakeRPCServer{s: s, cl: cl}
}

// readRequest reads one request from the client and returns its id.
func (f *fakeRPCServer) readRequest(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	frame, err := recvFrameContext(ctx, f.s)
	if err != nil {
		t.Errorf("fake server: read request: %v", err)
		return 0
	}
	req, _, err := parseRequest(frame)
	if err != nil {
		t.Errorf("fake server: %v", err)
	}
	return req.ID
}

// responseFrame returns the bytes of a stream frame holding a successful
// response to id with result encoded as resultBytes.
func responseFrame(id uint64, resultBytes []byte) []byte {
	body := []byte{0x94}
	body = append(body, 0xcf)
	body = binary.BigEndian.AppendUint64(body, id)
	body = append(body, 0xa0, 0xa0) // code "", message ""
	body = append(body, resultBytes...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// callAsync runs cl.Call in a goroutine and returns its error channel.
func callAsync(ctx context.Context, cl *Client, method string, args, result any) <-chan error {
	done := make(chan error, 1)
	go func() { done <- cl.Call(ctx, method, args, result) }()
	return done
}

// await returns the error from done, or fails the test if none comes
// within hangGuard.
func await(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(hangGuard):
		t.Fatalf("%s: still blocked after %v", what, hangGuard)
		return nil
	}
}

// TestRPCDeepResponse has a server answer with a result nested 2,000,000
// deep: the client must report a bad frame, not die of a stack overflow.
func TestRPCDeepResponse(t *testing.T) {
	f := newFakeRPCServer(t, 16<<20, nil)
	var v any
	done := callAsync(t.Context(), f.cl, "echo", 1, &v)
	id := f.readRequest(t)
	go f.s.nc.Write(responseFrame(id, nested(2_000_000)))
	if err := await(t, "call answered with a deep result", done); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("call answered with a result nested 2,000,000 deep: %v, want ErrTooDeep", err)
	}
}

// TestRPCDeepRequest sends a server a request whose arguments nest
// 2,000,000 deep: the server drops that connection (rather than dying of a
// stack overflow) and keeps serving others.
func TestRPCDeepRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*hangGuard)
	defer cancel()
	s := testServer(ServerConfig{Auth: AuthConfig{MaxFrame: 16 << 20}}, nil)
	path := startServer(t, s)
	good := dialClient(t, ctx, path)
	c := authedRaw(t, ctx, path)
	body := append([]byte{0x93, 1, 0xa4, 'e', 'c', 'h', 'o'}, nested(2_000_000)...)
	go c.nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
	waitClosed(t, ctx, c)
	var str string
	if err := good.Call(ctx, "echo", "still here", &str); err != nil || str != "still here" {
		t.Fatalf("echo after a deep request: %q, %v", str, err)
	}
	if st := s.Stats(); st.Dropped != 1 {
		t.Errorf("server dropped %d connections, want 1", st.Dropped)
	}
}

// TestRPCTwoRequestsOneFrame sends two requests in one frame to a server
// that runs one call at a time per connection: both must be answered
// (issue 15 finding 3: the reader took the slot for the first request,
// then waited for a slot for the second before starting the first).
func TestRPCTwoRequestsOneFrame(t *testing.T) {
	for _, inFlight := range []int{1, 2} {
		t.Run(fmt.Sprintf("inflight=%d", inFlight), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
			defer cancel()
			path := startServer(t, testServer(ServerConfig{MaxInFlight: inFlight}, nil))
			c := authedRaw(t, ctx, path)
			for id, p := range []pair{{1, 2}, {3, 4}} {
				if err := c.Buffer(&callRequest{id: uint64(id + 1), method: "add", args: p}); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			got := map[uint64]int{}
			for range 2 {
				frame, err := recvFrameContext(ctx, c)
				if err != nil {
					t.Fatalf("answers so far %v, then: %v", got, err)
				}
				for len(frame) > 0 {
					resp, rest, err := parseResponse(frame)
					if err != nil {
						t.Fatal(err)
					}
					frame = rest
					var sum int
					if err := decodeResult(resp.Result, &sum); err != nil || resp.Code != "" {
						t.Fatalf("response %+v: %v", resp, err)
					}
					got[resp.ID] = sum
				}
				if len(got) == 2 {
					break
				}
			}
			if got[1] != 3 || got[2] != 7 {
				t.Fatalf("answers %v, want map[1:3 2:7]", got)
			}
		})
	}
}

// TestRPCCallContextMidFrame has a server write 6 bytes of a 17-byte
// response and stop: a Call whose context ends once the client has read
// those 6 bytes must return its context's error (issue 15 finding 4: it
// stayed blocked reading the frame). When the rest arrives, the client
// reads on in step.
func TestRPCCallContextMidFrame(t *testing.T) {
	f := newFakeRPCServer(t, 0, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var v int
	done := callAsync(ctx, f.cl, "add", pair{1, 2}, &v)
	id := f.readRequest(t)
	frame := responseFrame(id, []byte{0x03})
	frame = frame[:len(frame):len(frame)] // the append below copies
	if _, err := f.s.nc.Write(frame[:6]); err != nil {
		t.Fatal(err)
	}
	// Wait until the client has taken the 6 bytes off its socket: it is
	// now inside the frame.
	guard := time.Now().Add(hangGuard)
	for queued(t, f.cl.c) > 0 {
		if time.Now().After(guard) {
			t.Fatal("the client never read the start of the response")
		}
		runtime.Gosched()
	}
	cancel()
	if err := await(t, "Call cancelled on a half-read response", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Call = %v, want context.Canceled", err)
	}
	// The rest of the abandoned response, then the next call's.
	done = callAsync(t.Context(), f.cl, "add", pair{3, 4}, &v)
	id2 := f.readRequest(t)
	if _, err := f.s.nc.Write(append(frame[6:], responseFrame(id2, []byte{0x07})...)); err != nil {
		t.Fatal(err)
	}
	if err := await(t, "the next call", done); err != nil || v != 7 {
		t.Fatalf("the next call = %d, %v; want 7", v, err)
	}
}

// TestRPCClientFrameIdle: a server that stops in the middle of a response
// fails the waiting call, with no context deadline, once the client's
// frame timeout passes.
func TestRPCClientFrameIdle(t *testing.T) {
	f := newFakeRPCServer(t, 0, func(c *Conn) { c.SetFrameTimeout(100 * time.Millisecond) })
	done := callAsync(context.Background(), f.cl, "add", pair{1, 2}, nil)
	id := f.readRequest(t)
	if _, err := f.s.nc.Write(responseFrame(id, []byte{0x03})[:6]); err != nil {
		t.Fatal(err)
	}
	err := await(t, "Call on a response stalled mid-frame", done)
	if !errors.Is(err, ErrFrameIdle) {
		t.Fatalf("Call = %v, want ErrFrameIdle", err)
	}
	t.Logf("call: %v", err)
	if err := f.cl.Call(context.Background(), "add", pair{1, 2}, nil); !errors.Is(err, ErrFrameIdle) {
		t.Fatalf("the next call on the broken client = %v, want ErrFrameIdle", err)
	}
}

// TestRPCServerFrameIdle: an authenticated client that stops in the middle
// of a request and stays connected is dropped once the server's frame
// timeout passes; one that is merely quiet between requests is not.
func TestRPCServerFrameIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*hangGuard)
	defer cancel()
	s := testServer(ServerConfig{FrameTimeout: 100 * time.Millisecond}, nil)
	path := startServer(t, s)
	quiet := dialClient(t, ctx, path)
	c := authedRaw(t, ctx, path)
	if _, err := c.nc.Write([]byte{0, 0, 0, 50, 0x93, 1}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ctx, c)
	if st := s.Stats(); st.Dropped != 1 {
		t.Errorf("server dropped %d connections, want 1", st.Dropped)
	}
	var sum int
	if err := quiet.Call(ctx, "add", pair{2, 3}, &sum); err != nil || sum != 5 {
		t.Fatalf("the quiet client: %d, %v", sum, err)
	}
}

// queued returns the bytes waiting in c's socket receive queue.
func queued(t *testing.T, c *Conn) int {
	t.Helper()
	raw, err := c.nc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return n
}
