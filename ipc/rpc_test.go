package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ipcplay/procs"
)

const rpcServerRole = "ipc-test-rpc-server"

// The RPC tests register their child role here rather than in TestMain
// (conn_test.go), so that this file stands on its own; init runs before
// TestMain calls procs.Init.
func init() {
	procs.Register(rpcServerRole, rpcServerMain)
}

type pair struct {
	A, B int
}

// testServer returns a Server with the test functions registered. probe
// counts the calls that reached a registered function.
func testServer(cfg ServerConfig, probe *atomic.Int64) *Server {
	if cfg.Auth.Key == nil {
		cfg.Auth.Key = testKey
	}
	s := NewServer(cfg)
	count := func() {
		if probe != nil {
			probe.Add(1)
		}
	}
	must := func(err error) {
		if err != nil {
			panic(err) // a broken test table
		}
	}
	must(s.Register("add", func(ctx context.Context, p pair) (int, error) { count(); return p.A + p.B, nil }))
	must(s.Register("echo", func(ctx context.Context, s string) (string, error) { count(); return s, nil }))
	must(s.Register("fail", func(ctx context.Context, msg string) (struct{}, error) {
		count()
		return struct{}{}, errors.New(msg)
	}))
	must(s.Register("panic", func(ctx context.Context, msg string) (int, error) { count(); panic(msg) }))
	must(s.Register("slow", func(ctx context.Context, ms int) (int, error) {
		count()
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return ms, nil
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}))
	must(s.Register("echomsg", func(ctx context.Context, m testMsg) (testMsg, error) { count(); return m, nil }))
	must(s.Register("blob", func(ctx context.Context, n int) ([]byte, error) { count(); return make([]byte, n), nil }))
	return s
}

// rpcServerMain serves the test functions on the listening socket it
// inherits at FDControl until its stdin closes.
func rpcServerMain(ctx context.Context, args []string) error {
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "listener")
	if err != nil {
		return err
	}
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return testServer(ServerConfig{}, nil).Serve(ctx, l.(*net.UnixListener))
}

// listenPrivate listens on a fresh socket in a private directory removed
// at cleanup.
func listenPrivate(t testing.TB) (*net.UnixListener, string) {
	t.Helper()
	dir, err := PrivateDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "rpc.sock")
	ln, err := Listen(Stream, path)
	if err != nil {
		t.Fatal(err)
	}
	return ln, path
}

// startRPCChild starts the test server in a child process and returns
// the path of its socket. The child stops at cleanup.
func startRPCChild(t testing.TB) string {
	t.Helper()
	ln, path := listenPrivate(t)
	f, err := ln.File()
	ln.SetUnlinkOnClose(false) // the child serves on it
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	stdin, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := procs.Command(ctx, rpcServerRole)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdin = stdin
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	f.Close()
	stdin.Close()
	t.Cleanup(func() {
		stdinW.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("rpc server child: %v", err)
		}
		cancel()
	})
	return path
}

// startServer runs s on a fresh socket in this process until cleanup.
func startServer(t testing.TB, s *Server) string {
	path, _ := startServerStop(t, s)
	return path
}

// startServerStop is startServer, also returning a function that stops
// the server and waits for it (called again at cleanup, it does nothing).
func startServerStop(t testing.TB, s *Server) (string, func()) {
	t.Helper()
	ln, path := listenPrivate(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(stop)
	return path, stop
}

func dialClient(t testing.TB, ctx context.Context, path string) *Client {
	t.Helper()
	cl, err := DialClient(ctx, path, testKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func wantRemote(t *testing.T, err error, method, code, msg string) {
	t.Helper()
	var re *RemoteError
	if !errors.As(err, &re) || re.Method != method || re.Code != code || (msg != "" && re.Message != msg) {
		t.Errorf("call %s: %v (%T), want a RemoteError with code %q and message %q", method, err, err, code, msg)
	}
}

// TestRPCChild calls a server running in a child process.
func TestRPCChild(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	path := startRPCChild(t)
	cl := dialClient(t, ctx, path)

	var sum int
	if err := cl.Call(ctx, "add", pair{2, 40}, &sum); err != nil || sum != 42 {
		t.Fatalf("add 2 40 = %d, %v", sum, err)
	}
	var s string
	if err := cl.Call(ctx, "echo", "héllo, world", &s); err != nil || s != "héllo, world" {
		t.Fatalf("echo = %q, %v", s, err)
	}
	wantRemote(t, cl.Call(ctx, "fail", "disk on fire", nil), "fail", CodeError, "disk on fire")
	wantRemote(t, cl.Call(ctx, "nosuch", 1, nil), "nosuch", CodeUnknownMethod, "")
	wantRemote(t, cl.Call(ctx, "add", "not a pair", &sum), "add", CodeBadArgs, "")
	wantRemote(t, cl.Call(ctx, "add", map[string]int{"A": 1, "C": 2}, &sum), "add", CodeBadArgs, "")
	wantRemote(t, cl.Call(ctx, "echo", 17, &s), "echo", CodeBadArgs, "")
	wantRemote(t, cl.Call(ctx, "panic", "oops", nil), "panic", CodePanic, "oops")
	if err := cl.Call(ctx, "add", pair{1, 1}, &sum); err != nil || sum != 2 {
		t.Fatalf("add after the errors = %d, %v", sum, err)
	}
	// A result the client cannot decode into what it passed.
	if err := cl.Call(ctx, "echo", "x", &sum); err == nil {
		t.Errorf("echo into an int: no error")
	}
	// An argument the client cannot encode never leaves.
	if err := cl.Call(ctx, "echo", make(chan int), &s); err == nil {
		t.Errorf("call with a channel argument: no error")
	}
	if err := cl.Call(ctx, "echo", "still there", &s); err != nil || s != "still there" {
		t.Fatalf("echo after the client-side errors = %q, %v", s, err)
	}
}

// TestRPCConcurrent checks that a slow call does not hold up the others on
// the same connection, and that a caller can give up on a call.
func TestRPCConcurrent(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	path := startRPCChild(t)
	cl := dialClient(t, ctx, path)

	// A call that runs until it is abandoned, so that the fast calls
	// are sure to be answered while it runs, however slow the machine.
	slowCtx, abandonSlow := context.WithCancel(ctx)
	defer abandonSlow()
	slow := make(chan error, 1)
	go func() {
		var ms int
		slow <- cl.Call(slowCtx, "slow", 10*60*1000, &ms)
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			var sum int
			if err := cl.Call(ctx, "add", pair{i, i}, &sum); err != nil || sum != 2*i {
				errs <- fmt.Errorf("add %d %d = %d, %v", i, i, sum, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow call returned (%v) before the fast ones were all answered: they were not concurrent", err)
	default:
	}
	abandonSlow()
	if err := <-slow; !errors.Is(err, context.Canceled) {
		t.Fatalf("slow call abandoned: %v, want context.Canceled", err)
	}

	// Giving up on a call.
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if err := cl.Call(short, "slow", 10*60*1000, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow call with a 50 ms deadline: %v", err)
	}
	var sum int
	if err := cl.Call(ctx, "add", pair{3, 4}, &sum); err != nil || sum != 7 {
		t.Fatalf("add after an abandoned call = %d, %v", sum, err)
	}
}

// authedRaw dials path and authenticates, returning the raw Conn so the
// test can break the protocol.
func authedRaw(t *testing.T, ctx context.Context, path string) *Conn {
	t.Helper()
	c, err := DialAuth(ctx, path, testKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed waits for the server to close c, failing after hangGuard.
func waitClosed(t *testing.T, ctx context.Context, c *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	for {
		var v any
		err := c.RecvContext(ctx, &v)
		if err == nil {
			t.Logf("got %v before the close", v)
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("server did not close the connection: %v", err)
		}
		return
	}
}

// TestRPCMalformed sends requests that break the protocol after a good
// handshake: the server drops that connection, never calls a function
// for it, and keeps serving another client.
func TestRPCMalformed(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var probe atomic.Int64
	s := testServer(ServerConfig{Auth: AuthConfig{MaxFrame: 1024}}, &probe)
	path := startServer(t, s)
	good := dialClient(t, ctx, path)

	cases := []struct {
		name string
		send func(c *Conn) error
	}{
		{"not-an-array", func(c *Conn) error { return c.Send("add") }},
		{"short-array", func(c *Conn) error { return c.Send([]any{1, "add"}) }},
		{"id-not-a-number", func(c *Conn) error { return c.Send([]any{"1", "add", pair{1, 2}}) }},
		{"method-not-a-string", func(c *Conn) error { return c.Send([]any{1, 2, 3}) }},
		{"bad-msgpack", func(c *Conn) error { _, err := c.nc.Write([]byte{0, 0, 0, 1, 0xc1}); return err }},
		{"claims-too-much", func(c *Conn) error { _, err := c.nc.Write([]byte{0, 0, 0, 3, 0x93, 1, 0xdd}); return err }},
		{"oversized", func(c *Conn) error { _, err := c.nc.Write([]byte{0, 1, 0, 0}); return err }},
		{"truncated", func(c *Conn) error { _, err := c.nc.Write([]byte{0, 0, 0, 9, 0x93, 1}); c.CloseWrite(); return err }},
	}
	for _, tc := range cases {
		t.Run("case="+tc.name, func(t *testing.T) {
			before := probe.Load()
			c := authedRaw(t, ctx, path)
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, ctx, c)
			if n := probe.Load() - before; n != 0 {
				t.Errorf("%d functions ran for a malformed request", n)
			}
			var sum int
			if err := good.Call(ctx, "add", pair{5, 6}, &sum); err != nil || sum != 11 {
				t.Fatalf("the good client after %s: %d, %v", tc.name, sum, err)
			}
		})
	}
	// A result over the frame limit is an error reply, not a dead
	// connection.
	wantRemote(t, good.Call(ctx, "blob", 4096, nil), "blob", CodeBadResult, "")
	var str string
	if err := good.Call(ctx, "echo", "ok", &str); err != nil || str != "ok" {
		t.Fatalf("echo after an oversized result: %q, %v", str, err)
	}
}

// TestRPCUnauthenticated checks that clients failing the handshake never
// reach a function.
func TestRPCUnauthenticated(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var probe atomic.Int64
	s := testServer(ServerConfig{Auth: AuthConfig{Timeout: 200 * time.Millisecond}}, &probe)
	path := startServer(t, s)

	if _, err := DialClient(ctx, path, []byte("a wrong key of enough length"), 0); !errors.Is(err, ErrRejected) {
		t.Errorf("dial with a wrong key: %v, want ErrRejected", err)
	}
	// No key: a plain connection sending requests straight away.
	c, err := Dial(ctx, Stream, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Send(&callRequest{id: 1, method: "add", args: pair{1, 2}})
	waitClosed(t, ctx, c)
	// Silence: the server gives up after its handshake timeout (that it
	// closes at all is the test: waitClosed fails after hangGuard).
	c2, err := Dial(ctx, Stream, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	waitClosed(t, ctx, c2)
	// A stall mid-handshake: the hello read, half a proof sent, and a
	// request behind it that must never run.
	c3, err := Dial(ctx, Stream, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	var hello serverHello
	if err := c3.RecvContext(ctx, &hello); err != nil {
		t.Fatal(err)
	}
	c3.nc.Write([]byte{0, 0, 0, 70, 0x92, 0xc4, 32})
	waitClosed(t, ctx, c3)
	if n := probe.Load(); n != 0 {
		t.Errorf("%d functions ran for unauthenticated clients", n)
	}
	if st := s.Stats(); st.Rejected != 4 || st.Authenticated != 0 || st.Calls != 0 {
		t.Errorf("stats %+v, want 4 rejected and no calls", st)
	}
}

// TestRPCCancelStorm has many callers share one Client while a third of
// their calls are abandoned at random moments: every call that is not
// abandoned must be answered, which it would not be if a caller quitting
// its turn as the reader forgot to wake another.
func TestRPCCancelStorm(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	path := startServer(t, testServer(ServerConfig{}, nil))
	cl := dialClient(t, ctx, path)
	var wg sync.WaitGroup
	var answered, abandoned atomic.Int64
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 150 {
				if (g+i)%3 == 0 {
					cctx, stop := context.WithTimeout(ctx, time.Duration((g*7+i)%5)*100*time.Microsecond)
					var ms int
					err := cl.Call(cctx, "slow", 1, &ms)
					stop()
					switch {
					case err == nil:
						answered.Add(1)
					case errors.Is(err, context.DeadlineExceeded):
						abandoned.Add(1)
					default:
						errs <- fmt.Errorf("caller %d call %d: %w", g, i, err)
						return
					}
					continue
				}
				var sum int
				if err := cl.Call(ctx, "add", pair{g, i}, &sum); err != nil || sum != g+i {
					errs <- fmt.Errorf("caller %d call %d: add = %d, %v", g, i, sum, err)
					return
				}
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d calls answered, %d abandoned", answered.Load(), abandoned.Load())
	var s string
	if err := cl.Call(ctx, "echo", "after the storm", &s); err != nil || s != "after the storm" {
		t.Fatalf("echo after the storm: %q, %v", s, err)
	}
}

// TestRPCBigPipelined has many callers send large arguments and get large
// results back through a server that runs only two calls at a time: both
// sockets' buffers fill up (32 requests of 128 KiB wait to be sent, and
// two responses of 128 KiB are more than a socket buffer of 208 KiB), and
// the calls still complete only if the client keeps reading responses
// while its callers are blocked sending.
//
// The test fails on a stall, not on slowness: under -race it moves 16 MiB
// through msgpack and the race detector's shadow memory (a second or two
// of CPU), which on a loaded machine took longer than a fixed 60 s
// deadline. So it fails once no call has been answered for stallAfter.
func TestRPCBigPipelined(t *testing.T) {
	const stallAfter = 30 * time.Second
	errStalled := fmt.Errorf("no call answered for %v: stalled", stallAfter)
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	s := testServer(ServerConfig{MaxInFlight: 2, Auth: AuthConfig{MaxFrame: 1 << 20}}, nil)
	s.Register("big", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	path := startServer(t, s)
	cl := dialClient(t, ctx, path)
	// The watchdog: on a stall it cancels the calls waiting for their
	// responses and closes the client, which fails those blocked sending.
	var answered atomic.Int64
	watchDone := make(chan struct{})
	var watch sync.WaitGroup
	defer watch.Wait()
	defer close(watchDone)
	watch.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, since := int64(0), time.Now()
		for {
			select {
			case <-tick.C:
			case <-watchDone:
				return
			}
			if n := answered.Load(); n != last {
				last, since = n, time.Now()
			} else if time.Since(since) >= stallAfter {
				cancel(errStalled)
				cl.Close()
				return
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			arg := make([]byte, 128<<10)
			arg[0] = byte(g)
			for i := range 2 {
				var got []byte
				if err := cl.Call(ctx, "big", arg, &got); err != nil || len(got) != len(arg) || got[0] != byte(g) {
					errs <- fmt.Errorf("caller %d call %d: %d bytes, %v (%v)", g, i, len(got), err, context.Cause(ctx))
					return
				}
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestServeStopsWithCallsRunning stops a server while a call runs: the
// call's context is cancelled, Serve returns (within hangGuard), and the
// caller gets an error rather than waiting forever.
func TestServeStopsWithCallsRunning(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	path, stop := startServerStop(t, testServer(ServerConfig{}, nil))
	cl := dialClient(t, ctx, path)
	done := make(chan error, 1)
	go func() { done <- cl.Call(ctx, "slow", 20000, nil) }()
	var sum int
	if err := cl.Call(ctx, "add", pair{1, 2}, &sum); err != nil || sum != 3 {
		t.Fatalf("add while a slow call runs: %d, %v", sum, err)
	}
	stopped := make(chan error, 1)
	go func() { stop(); stopped <- nil }()
	await(t, "Serve stopping with a call running", stopped)
	err := await(t, "the caller after the server stopped", done)
	if err == nil {
		t.Errorf("the slow call succeeded after the server stopped")
	}
	t.Logf("slow call: %v", err)
}
