package benchlab

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"ipcplay/shm"
)

// TestShmChildKilledAnyMoment kills the echo child with SIGKILL at a
// random moment of a stream of round trips and throughput batches (so
// during a Send on a full ring, a Recv, or the child's own copy) and
// checks that the parent's next call fails naming the child's exit
// instead of hanging, then that the child is reaped and no memfd is left
// open or mapped. The test's deadline catches a hang.
func TestShmChildKilledAnyMoment(t *testing.T) {
	rounds := 4
	if os.Getenv("IPCPLAY_LONG") != "" {
		rounds = 40
	}
	for _, name := range []string{"shm-spin", "shm-copy", "ring"} {
		for _, size := range []int{64, 64 << 10} {
			t.Run("mech="+name+"/size="+sizeName(size), func(t *testing.T) {
				for range rounds {
					killMidStream(t, name, size, rand.IntN(300))
				}
			})
		}
	}
}

// killMidStream runs one pair, has the child killed after ops operations
// have started, and checks what the parent sees and what is left.
func killMidStream(t *testing.T, name string, size, ops int) {
	t.Helper()
	fds, maps := memfdsLeft(t)
	m, _ := lookupMech(name)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := startPair(ctx, m, size, -1)
	if err != nil {
		t.Fatalf("startPair: %v", err)
	}
	kill := make(chan struct{})
	killed := make(chan error, 1)
	go func() {
		<-kill
		killed <- p.cmd.Process().Kill()
	}()
	closed := false
	streamErr := func() error {
		defer func() {
			if !closed {
				close(kill) // failed before the kill: still kill and reap
			}
		}()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if p.onThread != nil {
			defer p.offThread()
			if err := p.onThread(); err != nil {
				return err
			}
		}
		buf := make([]byte, size)
		ack := make([]byte, 1)
		for i := 0; ; i++ {
			if i == ops {
				close(kill)
				closed = true
			}
			if i%2 == 0 {
				buf[0] = opEcho
				if err := p.end.Send(buf); err != nil {
					return err
				}
				if err := p.end.Recv(buf); err != nil {
					return err
				}
				continue
			}
			w := window(size)
			for j := range w {
				buf[0] = opSink
				if j == w-1 {
					buf[0] = opSinkAck
				}
				if err := p.end.Send(buf); err != nil {
					return err
				}
			}
			if err := p.end.Recv(ack); err != nil {
				return err
			}
		}
	}()
	if err := <-killed; err != nil {
		t.Errorf("kill child: %v", err)
	}
	if !closed {
		t.Errorf("stream failed before its operation %d, when the child was to be killed: %v", ops, streamErr)
	}
	p.wait(true)
	if p.cmd.ProcessState() == nil {
		t.Errorf("child not reaped")
	}
	if !errors.Is(streamErr, errChildExited) && !errors.Is(streamErr, io.EOF) && !errors.Is(streamErr, shm.ErrNoConsumers) {
		t.Errorf("after %d operations, the child killed: %v, want an error naming its exit", ops, streamErr)
	}
	if f, mp := memfdsLeft(t); f != fds || mp != maps {
		t.Errorf("memfd descriptors %d -> %d, mappings %d -> %d: the pair leaked one", fds, f, maps, mp)
	}
}

// memfdsLeft counts this process's open bench memfds and their mappings.
func memfdsLeft(t *testing.T) (fds, maps int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list descriptors: %v", err)
	}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.Contains(l, "memfd:ipcplay-bench") {
			fds++
		}
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatalf("read mappings: %v", err)
	}
	return fds, strings.Count(string(b), "memfd:ipcplay-bench")
}

// TestShmChildDeadAtStart kills the echo child as soon as it is started,
// most likely before it has mapped the region or attached to a ring, and
// checks that the parent's first round trip fails instead of waiting for
// a peer that will never come. The ring notices a peer that attached and
// died; one that never attached must be noticed too.
func TestShmChildDeadAtStart(t *testing.T) {
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
			if err := p.cmd.Process().Kill(); err != nil {
				t.Fatalf("kill child: %v", err)
			}
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
			err = p.end.Send(msg)
			if err == nil {
				err = p.end.Recv(msg)
			}
			if !errors.Is(err, errChildExited) && !errors.Is(err, io.EOF) {
				t.Errorf("round trip with the child killed at its start = %v, want an error naming its exit", err)
			}
		})
	}
}
