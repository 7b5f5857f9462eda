package procs

import (
	"context"
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

// BenchmarkSpawn is the fixed cost of a child. role=bare starts BareRole,
// which returns at once, and reaps it: the floor every child of this
// binary pays. role=worker starts a child that reaches its role, opens its
// control slot and writes one byte there, as a worker says it is ready; it
// reports ready-ns/op, from just before Start to that byte, beside ns/op
// (which adds the exit and the reaping). impl=goroutine is the same for a
// goroutine. Run with
//
//	go test -run '^$' -bench Spawn -count 5 ./procs
func BenchmarkSpawn(b *testing.B) {
	b.Run("role=bare", func(b *testing.B) {
		ctx := b.Context()
		for b.Loop() {
			if err := Command(ctx, BareRole).Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("role=worker", func(b *testing.B) {
		ctx := b.Context()
		var ready time.Duration
		for b.Loop() {
			start := time.Now()
			r, err := spawnReady(ctx)
			if err != nil {
				b.Fatal(err)
			}
			ready += r.ready.Sub(start)
			if err := r.cmd.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(ready.Nanoseconds())/float64(b.N), "ready-ns/op")
	})
	b.Run("impl=goroutine", func(b *testing.B) {
		var wg sync.WaitGroup
		for b.Loop() {
			wg.Go(func() {})
			wg.Wait()
		}
	})
}

type readyChild struct {
	cmd   *Cmd
	ready time.Time
}

// spawnReady starts roleReady (a minimal worker) and waits for its byte.
func spawnReady(ctx context.Context) (readyChild, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return readyChild{}, err
	}
	defer r.Close()
	c := Command(ctx, roleReady)
	c.SetFile(FDControl, w)
	if err := c.Start(); err != nil {
		return readyChild{}, err
	}
	var one [1]byte
	if _, err := io.ReadFull(r, one[:]); err != nil {
		c.Wait()
		return readyChild{}, err
	}
	return readyChild{cmd: c, ready: time.Now()}, nil
}
