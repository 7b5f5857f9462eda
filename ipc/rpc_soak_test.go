package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hostile is one way a peer can misbehave. It returns nil once the server
// has rejected it as it should, and an error if the server did not.
type hostile struct {
	name string
	// auth: the peer first completes a good handshake, and so counts as
	// authenticated rather than rejected.
	auth bool
	run  func(ctx context.Context, path string) error
}

// rawHostile dials path without any handshake, writes data (closing its
// write side if closeWrite), then waits for the server to hang up.
func rawHostile(data []byte, closeWrite bool) func(ctx context.Context, path string) error {
	return func(ctx context.Context, path string) error {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return err
		}
		defer nc.Close()
		uc := nc.(*net.UnixConn)
		if len(data) > 0 {
			if _, err := uc.Write(data); err != nil {
				return nil // the server already hung up
			}
		}
		if closeWrite {
			uc.CloseWrite()
		}
		return waitHangUp(ctx, uc)
	}
}

// waitHangUp reads until the server closes nc, or fails after a deadline
// (which bounds a hang; the server's own timeouts are far shorter).
func waitHangUp(ctx context.Context, nc net.Conn) error {
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, nc)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, errConnReset) || err == nil {
		return nil
	}
	return fmt.Errorf("server did not hang up: %w", err)
}

// authedHostile completes a good handshake, then writes data and closes
// its write side.
func authedHostile(data []byte) func(ctx context.Context, path string) error {
	return func(ctx context.Context, path string) error {
		c, err := DialAuth(ctx, path, testKey, soakHandshake)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.nc.Write(data); err != nil {
			return nil
		}
		c.nc.CloseWrite()
		return waitHangUp(ctx, c.nc)
	}
}

var hostiles = []hostile{
	{name: "wrong-key", run: func(ctx context.Context, path string) error {
		c, err := DialAuth(ctx, path, []byte("not the key, but long enough"), soakHandshake)
		if err == nil {
			c.Close()
			return errors.New("a wrong key was accepted")
		}
		if !errors.Is(err, ErrRejected) {
			return fmt.Errorf("wrong key: %w, want ErrRejected", err)
		}
		return nil
	}},
	{name: "garbage", run: rawHostile([]byte("GET / HTTP/1.1\r\nHost: ipcplay\r\n\r\n\xc1\xc1\xc1"), false)},
	{name: "oversized-length", run: rawHostile([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, false)},
	{name: "truncated-frame", run: rawHostile([]byte{0, 0, 0, 100, 0x92, 0xc4, 32}, true)},
	{name: "no-key-request", run: rawHostile([]byte{0, 0, 0, 9, 0x93, 1, 0xa3, 'a', 'd', 'd', 0x92, 1, 2}, false)},
	{name: "hang-up-at-once", run: rawHostile(nil, true)},
	{name: "authed-garbage", auth: true, run: authedHostile([]byte{0, 0, 0, 2, 0xc1, 0xc1})},
	{name: "authed-oversized", auth: true, run: authedHostile([]byte{0x7f, 0xff, 0xff, 0xff})},
	{name: "authed-truncated", auth: true, run: authedHostile([]byte{0, 0, 0, 50, 0x93, 1})},
	{name: "authed-stall-mid-frame", auth: true, run: func(ctx context.Context, path string) error {
		// Half a request, then silence with the connection open: the
		// server drops it after its frame timeout.
		c, err := DialAuth(ctx, path, testKey, soakHandshake)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.nc.Write([]byte{0, 0, 0, 50, 0x93, 1}); err != nil {
			return nil
		}
		return waitHangUp(ctx, c.nc)
	}},
}

// stall is a peer that connects and says nothing until the hostile peers
// are done, holding one of the server's connections all along; then it
// hangs up, and the server must count it as rejected. (That the server
// hangs up on a silent peer after its handshake timeout is tested in
// TestRPCUnauthenticated: here the timeout is longer than the soak.)
func stall(ctx context.Context, path string, done <-chan struct{}) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	defer nc.Close()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// soakHandshake is the handshake timeout of the soak's server and
// clients: longer than the soak, so that no handshake, however slow a
// loaded machine makes it, runs out of time. With 300 ms on the server
// (and the 5 s default on the clients) the soak failed about once in five
// full runs on a loaded machine ("client handshake: malformed handshake
// message: rejected by the peer: server closed the connection"): the
// server had logged one "handshake timed out" more than there were
// stalling peers, so a good client had been cut.
const soakHandshake = 2 * time.Minute

// TestRPCSoak interleaves 1,000 hostile connections with good clients: every
// good call must be answered correctly, the server's memory must stay
// bounded, and no goroutine may be left at the end.
func TestRPCSoak(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapInuse

	var probe atomic.Int64
	// The frame timeout can be short: a good client's frames are
	// written whole, so only a peer that stops inside one waits for it.
	s := testServer(ServerConfig{Auth: AuthConfig{Timeout: soakHandshake}, MaxConns: 64, FrameTimeout: 300 * time.Millisecond}, &probe)
	path, stopServer := startServerStop(t, s)

	// The heap's peak, sampled while the soak runs.
	var peak atomic.Uint64
	sampling, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-tick.C:
			case <-sampling.Done():
				return
			}
		}
	})

	// Good clients call until the hostile ones are done, and at least 50
	// times each; every 20 calls a client hangs up and dials again, so good
	// handshakes are interleaved with the hostile ones too.
	hostileDone := make(chan struct{})
	var goodCalls, goodDials atomic.Int64
	var good sync.WaitGroup
	goodErrs := make(chan error, 16)
	for g := range 4 {
		good.Go(func() {
			var cl *Client
			defer func() {
				if cl != nil {
					cl.Close()
				}
			}()
			for i := 0; ; i++ {
				if i >= 50 {
					select {
					case <-hostileDone:
						return
					default:
					}
				}
				if i%20 == 0 {
					if cl != nil {
						cl.Close()
					}
					var err error
					if cl, err = DialClient(ctx, path, testKey, soakHandshake); err != nil {
						goodErrs <- fmt.Errorf("good client %d dial %d: %w", g, i/20, err)
						return
					}
					goodDials.Add(1)
				}
				var sum int
				if err := cl.Call(ctx, "add", pair{g, i}, &sum); err != nil || sum != g+i {
					goodErrs <- fmt.Errorf("good client %d call %d: add = %d, %v", g, i, sum, err)
					return
				}
				goodCalls.Add(1)
				time.Sleep(200 * time.Microsecond) // leave the CPUs to the hostile peers too
			}
		})
	}

	// Hostile peers, 16 at a time, every kind in turn; one in a hundred
	// stalls (see stall).
	var wantRejected, wantAuthed atomic.Int64
	jobs := make(chan int)
	var bad sync.WaitGroup
	badErrs := make(chan error, n)
	for range 16 {
		bad.Go(func() {
			for i := range jobs {
				h := hostiles[i%len(hostiles)]
				if h.auth {
					wantAuthed.Add(1)
				} else {
					wantRejected.Add(1)
				}
				if err := h.run(ctx, path); err != nil {
					badErrs <- fmt.Errorf("hostile %d (%s): %w", i, h.name, err)
				}
			}
		})
	}
	// The stalling peers connect first and hold their connections until
	// the other hostile peers are done.
	var stalls sync.WaitGroup
	for i := 99; i < n; i += 100 {
		wantRejected.Add(1)
		stalls.Go(func() {
			if err := stall(ctx, path, hostileDone); err != nil {
				badErrs <- fmt.Errorf("hostile %d (stall): %w", i, err)
			}
		})
	}
	start := time.Now()
	for i := range n {
		if i%100 != 99 {
			jobs <- i
		}
	}
	close(jobs)
	bad.Wait()
	close(hostileDone)
	stalls.Wait()
	good.Wait()
	stopSampling()
	sampler.Wait()
	t.Logf("%d hostile connections in %v; %d good calls answered on %d good connections", n, time.Since(start), goodCalls.Load(), goodDials.Load())
	close(badErrs)
	close(goodErrs)
	for err := range goodErrs {
		t.Error(err)
	}
	nbad := 0
	for err := range badErrs {
		if nbad++; nbad <= 10 {
			t.Error(err)
		}
	}

	stopServer()
	st := s.Stats()
	t.Logf("server stats: %+v", st)
	if got := probe.Load(); got != goodCalls.Load() {
		t.Errorf("%d functions ran for %d good calls: hostile peers reached them", got, goodCalls.Load())
	}
	// The "hang-up-at-once" peer may be gone before the server accepts
	// it; every other one is counted.
	if st.Rejected > uint64(wantRejected.Load()) || st.Rejected < uint64(wantRejected.Load())*8/10 {
		t.Errorf("server rejected %d connections, want about %d", st.Rejected, wantRejected.Load())
	}
	if want := uint64(wantAuthed.Load() + goodDials.Load()); st.Authenticated != want {
		t.Errorf("server authenticated %d connections, want %d", st.Authenticated, want)
	}
	if p := peak.Load(); p > baseHeap+64<<20 {
		t.Errorf("heap in use peaked at %d MiB, from %d MiB: not bounded", p>>20, baseHeap>>20)
	} else {
		t.Logf("heap in use peaked at %.1f MiB, from %.1f MiB", float64(p)/(1<<20), float64(baseHeap)/(1<<20))
	}
	// Every goroutine is gone once the server and the clients are.
	settled := time.Now().Add(hangGuard) // a bound on a leak, not a speed
	for runtime.NumGoroutine() > baseGoroutines && time.Now().Before(settled) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseGoroutines {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after the soak, %d before:\n%s", g, baseGoroutines, buf[:runtime.Stack(buf, true)])
	}
}

var errConnReset = syscall.ECONNRESET
