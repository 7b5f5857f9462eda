package ipc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Tests from an independent review of ipc (conn, validate, auth, rpc,
// socket). Each failed before its fix.

// TestRecvResumesAfterFrameTimeout: a receive cut by its context in the
// middle of a frame, then a peer that sends the rest at once, and a
// receiver that comes back only after the frame timeout. The peer was never
// idle inside the frame: the next receive must return the value, not
// ErrFrameIdle (the frame deadline armed by the first receive used to
// stay on the socket and fire on the next read).
func TestRecvResumesAfterFrameTimeout(t *testing.T) {
	const frameTimeout = time.Second
	a, b := connPair(t, Stream)
	a.SetFrameTimeout(frameTimeout)
	val, err := msgpack.Marshal("sent promptly, read late")
	if err != nil {
		t.Fatal(err)
	}
	frame := frameBytes(Stream, val)
	if _, err := b.nc.Write(frame[:9]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	var s string
	err = a.RecvContext(ctx, &s)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RecvContext of part of a frame = %v, want context.DeadlineExceeded", err)
	}
	if _, err := b.nc.Write(frame[9:]); err != nil {
		t.Fatal(err)
	}
	// The receiver is away (doing other work) until the frame timeout
	// counted from the first bytes has passed. This waits for the clock,
	// not for another goroutine.
	<-time.After(time.Until(start.Add(frameTimeout + 100*time.Millisecond)))
	ctx, cancel = context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	if err := a.RecvContext(ctx, &s); err != nil || s != "sent promptly, read late" {
		t.Fatalf("receive of a frame whose rest arrived promptly = %q, %v", s, err)
	}
}

// TestQueueGetDeepValue: a queue value is opaque bytes that another client
// put; Get decodes it. A value nested 2,000,000 deep must be an error for
// the getter, not a fatal stack overflow of its process.
func TestQueueGetDeepValue(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	q := newTestQueue(t, 4)
	p, c := testClient(t, q), testClient(t, q)
	if err := p.PutBytes(ctx, nested(2_000_000)); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := c.Get(ctx, &v); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("get of a value nested 2,000,000 deep: %v, want ErrTooDeep", err)
	}
}

// TestRPCArgsDecodePanic: msgpack panics when it decodes a map key that Go
// cannot hash (an array) into a map with interface keys. An authenticated
// client sending such arguments to a method taking map[any]int must get a
// CodeBadArgs or CodePanic error; the server must survive.
func TestRPCArgsDecodePanic(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	s := testServer(ServerConfig{}, nil)
	if err := s.Register("keys", func(ctx context.Context, m map[any]int) (int, error) { return len(m), nil }); err != nil {
		t.Fatal(err)
	}
	path := startServer(t, s)
	cl := dialClient(t, ctx, path)
	bad := msgpack.RawMessage{0x81, 0x91, 0x01, 0x01} // {[1]: 1}
	var n int
	err := cl.Call(ctx, "keys", bad, &n)
	var re *RemoteError
	if !errors.As(err, &re) || (re.Code != CodeBadArgs && re.Code != CodePanic) {
		t.Fatalf("call with an unhashable map key: %v, want a RemoteError (bad-args or panic)", err)
	}
	var str string
	if err := cl.Call(ctx, "echo", "still here", &str); err != nil || str != "still here" {
		t.Fatalf("echo after: %q, %v", str, err)
	}
}

// TestRecvDecodePanic: Conn.Recv into a map with interface keys of a value
// whose key is an array is an error for the receiver, not a panic that
// kills it.
func TestRecvDecodePanic(t *testing.T) {
	a, b := connPair(t, Stream)
	if _, err := b.nc.Write(frameBytes(Stream, []byte{0x81, 0x91, 0x01, 0x01})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	var m map[any]int
	if err := a.RecvContext(ctx, &m); err == nil {
		t.Fatalf("receive of {[1]: 1} into map[any]int: %v, want an error", m)
	}
}

// TestFrameIdleAcrossResumes: a peer that stops inside a frame for good,
// and a receiver that keeps trying with short contexts. The frame timeout
// counts the time spent waiting across those receives, so one of them
// reports ErrFrameIdle; a fresh timeout per receive would never run out.
func TestFrameIdleAcrossResumes(t *testing.T) {
	a, b := connPair(t, Stream)
	a.SetFrameTimeout(300 * time.Millisecond)
	frame := frameBytes(Stream, []byte{0xa5, 'h', 'e', 'l', 'l', 'o'})
	if _, err := b.nc.Write(frame[:6]); err != nil {
		t.Fatal(err)
	}
	guard := time.Now().Add(hangGuard)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		var s string
		err := a.RecvContext(ctx, &s)
		cancel()
		if errors.Is(err, ErrFrameIdle) {
			return
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("receive from a peer stalled in a frame: %v, want a context deadline or ErrFrameIdle", err)
		}
		if time.Now().After(guard) {
			t.Fatalf("no ErrFrameIdle after %v of short receives from a peer stalled in a frame", hangGuard)
		}
	}
}

// TestListenReplaceSymlink: a symlink at the path, to a stale socket file,
// is not a socket of ours to replace: ListenReplace fails and leaves both
// the link and its target in place.
func TestListenReplaceSymlink(t *testing.T) {
	path := privatePath(t)
	target := filepath.Join(filepath.Dir(path), "target.sock")
	ln, err := Listen(Stream, target)
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // target.sock is now a stale socket file
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if ln, err := ListenReplace(Stream, path); err == nil {
		ln.Close()
		t.Fatal("ListenReplace over a symlink to a stale socket succeeded, want an error")
	}
	if st, err := os.Lstat(path); err != nil || st.Mode().Type() != os.ModeSymlink {
		t.Errorf("the symlink after ListenReplace: %v, %v", st, err)
	}
	if st, err := os.Lstat(target); err != nil || st.Mode().Type() != os.ModeSocket {
		t.Errorf("the symlink's target after ListenReplace: %v, %v", st, err)
	}
}

// TestHandshakeReflection: a server without the key that sends the
// client's own proof back as its proof must be refused. Only the direction
// label inside the MAC tells the two proofs apart (drop it, and a client
// would accept any server that echoes it).
func TestHandshakeReflection(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	y, c := authPair(t)
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			nonce := make([]byte, nonceLen)
			if err := y.SendContext(ctx, &serverHello{Version: authVersion, Nonce: nonce}); err != nil {
				return err
			}
			var cp clientProof
			if err := y.RecvContext(ctx, &cp); err != nil {
				return err
			}
			return y.SendContext(ctx, &serverProof{MAC: cp.MAC})
		}()
	}()
	err := ClientHandshake(ctx, c, testKey, 0, 0)
	if ferr := <-done; ferr != nil {
		t.Fatalf("fake server: %v", ferr)
	}
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("client given its own proof back as the server's: %v, want ErrWrongKey", err)
	}
}
