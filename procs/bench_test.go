package procs

import (
	"sync"
	"testing"
)

// BenchmarkSpawn is the fixed cost of a worker: starting a child process
// of this binary that returns at once and reaping it, against starting a
// goroutine and waiting for it. Run with
//
//	go test -run '^$' -bench Spawn ./procs
func BenchmarkSpawn(b *testing.B) {
	b.Run("impl=process", func(b *testing.B) {
		ctx := b.Context()
		for b.Loop() {
			if err := Command(ctx, roleExit, "0").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=goroutine", func(b *testing.B) {
		var wg sync.WaitGroup
		for b.Loop() {
			wg.Go(func() {})
			wg.Wait()
		}
	})
}
