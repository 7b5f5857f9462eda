package factor

import (
	"context"
	"errors"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"runtime"
	"testing"
	"time"
)

// TestRunRestoresProcessors: the pool's parent dispatches with GOMAXPROCS
// 1; every way out of a Procs run (done, its context ended mid-map, its
// progress callback panicking) must give the goroutines' run, and the rest
// of the process, the processors back, and leave no child.
func TestRunRestoresProcessors(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	check := func(how string, during int) {
		t.Helper()
		if got := runtime.GOMAXPROCS(0); got != before {
			t.Errorf("%s: GOMAXPROCS %d after the run, %d before", how, got, before)
		}
		if during != 1 {
			t.Errorf("%s: GOMAXPROCS %d during the map, want 1", how, during)
		}
		labtest.NoChildren(t)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	during := 0
	progress := func(done, total uint64) { during = runtime.GOMAXPROCS(0) }
	if _, err := Run(ctx, Procs, Config{UpTo: 20000, Workers: 2, ChunkSize: 100, Progress: progress}); err != nil {
		t.Fatal(err)
	}
	check("done", during)

	mctx, mcancel := context.WithCancel(ctx)
	during = 0
	_, err := Run(mctx, Procs, Config{UpTo: 20000, Workers: 2, ChunkSize: 100, Progress: func(done, total uint64) {
		during = runtime.GOMAXPROCS(0)
		if done > 5000 {
			mcancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled mid-map: err = %v, want context.Canceled", err)
	}
	check("cancelled", during)

	during = 0
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("the progress callback's panic did not reach Run's caller")
			}
		}()
		Run(ctx, Procs, Config{UpTo: 20000, Workers: 2, ChunkSize: 100, Progress: func(done, total uint64) {
			during = runtime.GOMAXPROCS(0)
			if done > 5000 {
				panic("progress")
			}
		}})
	}()
	check("panicked", during)
}
