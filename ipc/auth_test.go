package ipc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef-test-key")

// authPair returns two fresh ends of a stream socket pair.
func authPair(t *testing.T) (server, client *Conn) {
	t.Helper()
	a, f, err := Pair(Stream)
	if err != nil {
		t.Fatal(err)
	}
	b, err := FileConn(f)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// handshake runs both ends of a handshake, each in its own goroutine, and
// returns what each reported. A side given as nil is played by peer, which
// gets the raw Conn of that side.
type handshakeCase struct {
	name      string
	serverCfg AuthConfig
	clientKey []byte
	// If set, they replace the real side.
	fakeServer func(ctx context.Context, c *Conn) error
	fakeClient func(ctx context.Context, c *Conn) error
	// clientTimeout is the real client's handshake timeout; zero means
	// hangGuard, so that only the cases about a timeout depend on one.
	clientTimeout time.Duration

	wantServer, wantClient error // nil for success
}

func runHandshake(t *testing.T, tc handshakeCase) (serverErr, clientErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*hangGuard)
	defer cancel()
	s, c := authPair(t)
	serverDone := make(chan error, 1)
	go func() {
		var err error
		if tc.fakeServer != nil {
			err = tc.fakeServer(ctx, s)
		} else {
			err = ServerHandshake(ctx, s, tc.serverCfg)
		}
		if err != nil {
			s.Close() // what a real server does
		}
		serverDone <- err
	}()
	if tc.fakeClient != nil {
		clientErr = tc.fakeClient(ctx, c)
	} else {
		timeout := tc.clientTimeout
		if timeout == 0 {
			timeout = hangGuard
		}
		clientErr = ClientHandshake(ctx, c, tc.clientKey, timeout, 0)
	}
	if clientErr != nil {
		c.Close()
	}
	serverErr = <-serverDone
	return serverErr, clientErr
}

func TestHandshake(t *testing.T) {
	// quick is for the cases about a timeout; the others get one that a
	// loaded machine cannot run out.
	quick := AuthConfig{Key: testKey, Timeout: 300 * time.Millisecond}
	slow := AuthConfig{Key: testKey, Timeout: hangGuard}
	wrongUID := slow
	wrongUID.AllowUID = func(uint32) bool { return false }
	cases := []handshakeCase{
		{name: "right-key", serverCfg: slow, clientKey: testKey},
		{name: "wrong-key", serverCfg: slow, clientKey: []byte("another key, 16+ bytes"),
			wantServer: ErrWrongKey, wantClient: ErrRejected},
		{name: "wrong-uid", serverCfg: wrongUID, clientKey: testKey,
			wantServer: ErrPeerUID, wantClient: ErrRejected},
		{name: "no-key", serverCfg: slow, fakeClient: func(ctx context.Context, c *Conn) error {
			// A client that skips the handshake and sends a request.
			return c.Send(&callRequest{id: 1, method: "probe", args: 1})
		}, wantServer: ErrHandshake},
		{name: "silent-client", serverCfg: quick, fakeClient: func(ctx context.Context, c *Conn) error {
			var v any
			return c.RecvContext(ctx, &v) // the hello; then silence until the server hangs up
		}, wantServer: ErrHandshakeTimeout},
		{name: "client-stalls-mid-handshake", serverCfg: quick, fakeClient: func(ctx context.Context, c *Conn) error {
			var hello serverHello
			if err := c.RecvContext(ctx, &hello); err != nil {
				return err
			}
			// Half a proof: the frame header promises more than comes.
			c.nc.Write([]byte{0, 0, 0, 40, 0x92})
			var v any
			return c.RecvContext(ctx, &v)
		}, wantServer: ErrHandshakeTimeout},
		{name: "oversized-before-auth", serverCfg: slow, fakeClient: func(ctx context.Context, c *Conn) error {
			return c.Send(string(make([]byte, 10_000)))
		}, wantServer: ErrHandshake},
		{name: "silent-server", clientTimeout: 300 * time.Millisecond, fakeServer: func(ctx context.Context, c *Conn) error {
			var v any
			return c.RecvContext(ctx, &v) // never speaks; returns when the client hangs up
		}, clientKey: testKey, wantClient: ErrHandshakeTimeout},
		{name: "reflected-server-proof", serverCfg: slow, fakeClient: func(ctx context.Context, c *Conn) error {
			// Without the key, the best a client can send is a proof
			// it got the server to compute: a "server" proof.
			var hello serverHello
			if err := c.RecvContext(ctx, &hello); err != nil {
				return err
			}
			n, _ := newNonce()
			return c.Send(&clientProof{MAC: mac(testKey, labelServer, hello.Nonce, n), Nonce: n})
		}, wantServer: ErrWrongKey},
		{name: "reflecting-server", clientKey: testKey, fakeServer: func(ctx context.Context, c *Conn) error {
			// A server without the key that sends the client's own
			// proof back as its own.
			n, _ := newNonce()
			if err := c.Send(&serverHello{Version: authVersion, Nonce: n}); err != nil {
				return err
			}
			var cp clientProof
			if err := c.RecvContext(ctx, &cp); err != nil {
				return err
			}
			return c.Send(&serverProof{MAC: cp.MAC})
		}, wantClient: ErrWrongKey},
	}
	for _, tc := range cases {
		t.Run("case="+tc.name, func(t *testing.T) {
			serverErr, clientErr := runHandshake(t, tc)
			if tc.fakeServer == nil {
				checkAuthErr(t, "server", serverErr, tc.wantServer)
			}
			if tc.fakeClient == nil {
				checkAuthErr(t, "client", clientErr, tc.wantClient)
			}
		})
	}
}

func checkAuthErr(t *testing.T, side string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s: %v, want success", side, err)
		}
		return
	}
	var ae *AuthError
	if !errors.As(err, &ae) || !errors.Is(err, want) || !errors.Is(err, ErrAuth) {
		t.Errorf("%s: %v (%T), want an *AuthError matching %v", side, err, err, want)
		return
	}
	if ae.Side != side {
		t.Errorf("%s: error from side %q: %v", side, ae.Side, err)
	}
	t.Logf("%s: %v", side, err)
}

func TestHandshakeFrameLimits(t *testing.T) {
	s, c := authPair(t)
	done := make(chan error, 1)
	go func() { done <- ServerHandshake(t.Context(), s, AuthConfig{Key: testKey, MaxFrame: 4096}) }()
	if err := ClientHandshake(t.Context(), c, testKey, time.Second, 8192); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.MaxFrame() != 4096 || c.MaxFrame() != 8192 {
		t.Fatalf("after the handshake: max frames %d and %d, want 4096 and 8192", s.MaxFrame(), c.MaxFrame())
	}
}

func TestShortKey(t *testing.T) {
	s, c := authPair(t)
	if err := ServerHandshake(t.Context(), s, AuthConfig{Key: []byte("short")}); !errors.Is(err, ErrShortKey) {
		t.Errorf("server with a short key: %v, want ErrShortKey", err)
	}
	if err := ClientHandshake(t.Context(), c, nil, 0, 0); !errors.Is(err, ErrShortKey) {
		t.Errorf("client with no key: %v, want ErrShortKey", err)
	}
}

// TestListenDialAuth runs the handshake over a socket in a private
// directory, on both sides of a path.
func TestListenDialAuth(t *testing.T) {
	dir, err := PrivateDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "auth.sock")
	ln, err := Listen(Stream, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	type accepted struct {
		c   *Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := AcceptAuth(ctx, ln, AuthConfig{Key: testKey})
		acc <- accepted{c, err}
	}()
	c, err := DialAuth(ctx, path, testKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := <-acc
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.c.Close()
	if err := c.Send("ping"); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := a.c.RecvContext(ctx, &s); err != nil || s != "ping" {
		t.Fatalf("after the handshake: %q, %v", s, err)
	}
	c.CloseWrite()
	if err := a.c.RecvContext(ctx, &s); err != io.EOF {
		t.Fatalf("after CloseWrite: %v, want io.EOF", err)
	}
}

// TestAcceptAuthRejects checks that AcceptAuth reports a peer with the
// wrong key as an *AuthError and that the listener stays usable.
func TestAcceptAuthRejects(t *testing.T) {
	ln, path := listenPrivate(t)
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() {
		for range 2 {
			c, err := AcceptAuth(ctx, ln, AuthConfig{Key: testKey})
			if c != nil {
				c.Close()
			}
			errs <- err
		}
	}()
	if _, err := DialAuth(ctx, path, []byte("not the key, but long enough"), 0); !errors.Is(err, ErrRejected) {
		t.Errorf("client with a wrong key: %v, want ErrRejected", err)
	}
	if err := <-errs; !errors.Is(err, ErrWrongKey) {
		t.Errorf("AcceptAuth of a wrong key: %v, want ErrWrongKey", err)
	}
	c, err := DialAuth(ctx, path, testKey, 0)
	if err != nil {
		t.Fatalf("the next client, with the key: %v", err)
	}
	c.Close()
	if err := <-errs; err != nil {
		t.Errorf("AcceptAuth of the right key: %v", err)
	}
}

// TestHandshakeSlowClientToldWhy: a client too slow for the server's
// handshake timeout (a loaded machine) is told so before the server hangs
// up, and a client whose server closes without a word reports a rejection,
// not a malformed message. (TestRPCSoak failed once with "client
// handshake: malformed handshake message: rejected by the peer: server
// closed the connection": its server's 300 ms timeout had run out for a
// good client.)
func TestHandshakeSlowClientToldWhy(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	s, c := authPair(t)
	done := make(chan error, 1)
	go func() {
		err := ServerHandshake(ctx, s, AuthConfig{Key: testKey, Timeout: 100 * time.Millisecond})
		s.Close() // as a server does on failure
		done <- err
	}()
	var hello serverHello
	if err := c.RecvContext(ctx, &hello); err != nil {
		t.Fatal(err)
	}
	// Too slow: the next message is the server giving up.
	var sp serverProof
	if err := c.RecvContext(ctx, &sp); err != nil || sp.Reason != reasonTimeout {
		t.Fatalf("slow client got %+v, %v; want a rejection saying %q", sp, err, reasonTimeout)
	}
	if err := <-done; !errors.Is(err, ErrHandshakeTimeout) {
		t.Fatalf("server: %v, want ErrHandshakeTimeout", err)
	}

	serverErr, clientErr := runHandshake(t, handshakeCase{clientKey: testKey,
		fakeServer: func(ctx context.Context, c *Conn) error {
			n, _ := newNonce()
			if err := c.Send(&serverHello{Version: authVersion, Nonce: n}); err != nil {
				return err
			}
			var cp clientProof
			if err := c.RecvContext(ctx, &cp); err != nil {
				return err
			}
			return c.Close() // without a word
		}})
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	if !errors.Is(clientErr, ErrRejected) || errors.Is(clientErr, ErrHandshake) {
		t.Fatalf("client whose server closed after its proof: %v, want ErrRejected and not ErrHandshake", clientErr)
	}
	t.Logf("client: %v", clientErr)
}

// recordHandshake runs a real handshake, ClientHandshake against
// ServerHandshake, through a relay that records the bytes each side sent.
func recordHandshake(t *testing.T) (fromClient, fromServer []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	cc, r1 := authPair(t) // the client, and the relay's end facing it
	sc, r2 := authPair(t) // the server, and the relay's end facing it
	var fromC, fromS bytes.Buffer
	var relay sync.WaitGroup
	relay.Go(func() { io.Copy(r2.nc, io.TeeReader(r1.nc, &fromC)); r2.nc.CloseWrite() })
	relay.Go(func() { io.Copy(r1.nc, io.TeeReader(r2.nc, &fromS)); r1.nc.CloseWrite() })
	done := make(chan error, 1)
	go func() { done <- ServerHandshake(ctx, sc, AuthConfig{Key: testKey}) }()
	if err := ClientHandshake(ctx, cc, testKey, 0, 0); err != nil {
		t.Fatalf("recorded handshake, client: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("recorded handshake, server: %v", err)
	}
	cc.Close()
	sc.Close()
	relay.Wait()
	return fromC.Bytes(), fromS.Bytes()
}

// TestHandshakeReplay plays a recorded handshake back to a fresh server
// (the client's proof, after the new server's hello) and to a fresh
// client (the server's hello and proof): both must refuse it, since each
// proof covers a nonce the other side has just chosen.
func TestHandshakeReplay(t *testing.T) {
	fromClient, fromServer := recordHandshake(t)
	t.Run("to=server", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
		defer cancel()
		s, x := authPair(t)
		done := make(chan error, 1)
		go func() {
			err := ServerHandshake(ctx, s, AuthConfig{Key: testKey})
			s.Close()
			done <- err
		}()
		if _, err := recvFrameContext(ctx, x); err != nil { // the new hello
			t.Fatal(err)
		}
		if _, err := x.nc.Write(fromClient); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if !errors.Is(err, ErrWrongKey) {
			t.Fatalf("server given a recorded client proof: %v, want ErrWrongKey", err)
		}
	})
	t.Run("to=client", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
		defer cancel()
		y, c := authPair(t)
		if _, err := y.nc.Write(fromServer); err != nil {
			t.Fatal(err)
		}
		err := ClientHandshake(ctx, c, testKey, 0, 0)
		if !errors.Is(err, ErrWrongKey) {
			t.Fatalf("client given a recorded server hello and proof: %v, want ErrWrongKey", err)
		}
	})
}
