package benchlab

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"
	"time"
)

// TestShmPipelinedEcho keeps twice a ring's slots of echo requests in
// flight through the shared-memory mechanisms, so that both rings fill,
// both sides wait for space and data and the indices wrap many times, and
// checks every reply is the request it answers, byte for byte: a lost
// wake-up hangs (the deadline catches it), a torn or reordered slot shows
// as a wrong reply.
func TestShmPipelinedEcho(t *testing.T) {
	for _, name := range []string{"shm-spin", "shm-copy", "ring"} {
		for _, size := range []int{64, 5000, 64 << 10} {
			t.Run("mech="+name+"/size="+sizeName(size), func(t *testing.T) {
				pipelinedEcho(t, name, size, max(100, 64<<10/size))
			})
		}
	}
}

func pipelinedEcho(t *testing.T, name string, size, batches int) {
	m, _ := lookupMech(name)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p, err := startPair(ctx, m, size, -1)
	if err != nil {
		t.Fatalf("startPair: %v", err)
	}
	failed := true
	defer func() { p.wait(failed) }()
	inFlight := 2 * shmSlots(size)
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if p.onThread != nil {
				defer p.offThread()
				if err := p.onThread(); err != nil {
					return err
				}
			}
			msg := make([]byte, size)
			got := make([]byte, size)
			fill := func(seq uint64) {
				msg[0] = opEcho
				for i := 1; i < size; i++ {
					msg[i] = byte(seq*131 + uint64(i)*7)
				}
				if size >= 9 {
					binary.NativeEndian.PutUint64(msg[1:], seq)
				}
			}
			var seq uint64
			for range batches {
				for k := range inFlight {
					fill(seq + uint64(k))
					if err := p.end.Send(msg); err != nil {
						return err
					}
				}
				for k := range inFlight {
					if err := p.end.Recv(got); err != nil {
						return err
					}
					fill(seq + uint64(k))
					if string(got) != string(msg) {
						t.Errorf("reply %d differs from its request (first bytes %x, want %x)", seq+uint64(k), got[:min(size, 16)], msg[:min(size, 16)])
						return nil
					}
				}
				seq += uint64(inFlight)
			}
			return p.quit(size, false)
		}()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pipelined echo: %v", err)
		}
	case <-time.After(2 * time.Minute):
		if e, ok := p.end.(*shmEnd); ok {
			for _, r := range []*shmRing{e.out, e.in} {
				t.Logf("ring head %d tail %d", r.head.Load(), r.tail.Load())
			}
		}
		p.cancel() // kills the child; the watch then ends the sender's wait
		<-done
		t.Fatalf("%d requests in flight: no progress for 2 minutes (a lost wake-up?)", inFlight)
	}
	if !t.Failed() {
		failed = false
	}
}
