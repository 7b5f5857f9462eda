package benchlab

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"
)

// TestRoundTrip sends one message through every mechanism, at the
// smallest and a large size, and checks the echo end sends it back intact
// and then quits cleanly.
func TestRoundTrip(t *testing.T) {
	for _, m := range Mechs() {
		for _, size := range []int{64, 64 << 10} {
			if m.Notify {
				if size != 64 {
					continue
				}
				size = notifySize
			}
			t.Run("mech="+m.Name+"/impl="+string(m.Impl)+"/size="+sizeName(size), func(t *testing.T) {
				if why := limit(m, size); why != "" {
					t.Skip(why)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				roundTrip(t, ctx, m, size)
			})
		}
	}
}

func roundTrip(t *testing.T, ctx context.Context, m Mech, size int) {
	t.Helper()
	p, err := startPair(ctx, m, size, -1)
	if err != nil {
		t.Fatalf("startPair(%s, %d): %v", m.Name, size, err)
	}
	failed := true
	defer func() {
		if err := p.wait(failed); err != nil {
			t.Errorf("echo end: %v", err)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if p.onThread != nil {
		if p.offThread != nil {
			defer p.offThread()
		}
		if err := p.onThread(); err != nil {
			t.Fatalf("thread setup: %v", err)
		}
	}
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i*7 + 3)
	}
	msg[0] = opEcho
	got := make([]byte, size)
	if err := p.end.Send(msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := p.end.Recv(got); err != nil {
		t.Fatalf("receive: %v", err)
	}
	want := msg
	if m.Notify {
		want, got = msg[:1], got[:1]
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo differs from the message sent (first bytes %v, want %v)", got[:min(8, len(got))], want[:min(8, len(want))])
	}
	if err := p.quit(size, false); err != nil {
		t.Fatalf("quit: %v", err)
	}
	failed = false
}

// TestStopUnblocks checks that cancelling a cell wakes a parent blocked in
// Recv on a mechanism whose descriptors it holds both ends of (no EOF when
// the child dies). The test's own deadline catches a hang.
func TestStopUnblocks(t *testing.T) {
	for _, name := range []string{"eventfd", "mq", "pipe", "shm-spin", "shm-copy", "ring"} {
		t.Run("mech="+name, func(t *testing.T) {
			m, _ := lookupMech(name)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			p, err := startPair(ctx, m, notifySize, -1)
			if err != nil {
				t.Fatalf("startPair: %v", err)
			}
			done := make(chan error, 1)
			go func() {
				b := make([]byte, notifySize)
				done <- p.end.Recv(b) // nothing was sent: only a stop ends it
			}()
			cancel()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("Recv after cancel = nil, want an error")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Recv still blocked 20s after the cell was cancelled")
			}
			p.wait(true)
		})
	}
}

// TestShmChildExitUnblocks checks that a parent waiting on shared memory
// (no EOF there) is woken when the echo child exits: the child is killed
// while the parent waits for a reply that will never come. shm-spin and
// shm-copy learn it from a pidfd (errChildExited), the ring from the same
// watch or its own table of attached processes (io.EOF: no producer left),
// whichever comes first.
func TestShmChildExitUnblocks(t *testing.T) {
	for _, name := range []string{"shm-spin", "shm-copy", "ring"} {
		t.Run("mech="+name, func(t *testing.T) {
			m, _ := lookupMech(name)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			p, err := startPair(ctx, m, 64, -1)
			if err != nil {
				t.Fatalf("startPair: %v", err)
			}
			defer p.wait(true)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if p.onThread != nil {
				if err := p.onThread(); err != nil {
					t.Fatalf("watch child: %v", err)
				}
				defer p.offThread()
			}
			msg := make([]byte, 64)
			msg[0] = opEcho
			if err := p.end.Send(msg); err != nil {
				t.Fatalf("send: %v", err)
			}
			if err := p.end.Recv(msg); err != nil {
				t.Fatalf("first round trip: %v", err)
			}
			if err := p.cmd.Process().Kill(); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			err = p.end.Recv(msg) // nothing was asked: only the child's exit ends it
			// The ring may notice first (io.EOF: no producer left).
			if !errors.Is(err, errChildExited) && (name != "ring" || !errors.Is(err, io.EOF)) {
				t.Errorf("Recv after the child was killed = %v, want an error naming its exit", err)
			}
		})
	}
}
