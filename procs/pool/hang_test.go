package pool

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// roleBig returns each string task as it came: large results.
const roleBig = "pool-test-big"

func echoString(ctx context.Context, s string) (string, error) { return s, nil }

// bigTasks returns n strings of size bytes, each distinct.
func bigTasks(n, size int) []string {
	tasks := make([]string, n)
	for i := range tasks {
		tasks[i] = strings.Repeat(string(rune('a'+i%26)), size)
	}
	return tasks
}

// mapBig maps 8 tasks of 1 MiB on one worker with chunk size 1, under a
// deadline: a pool that can hang returns the deadline's error instead of
// the results.
func mapBig(t *testing.T, inFlight int, kill bool) {
	t.Helper()
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleBig, Workers: 1, InFlight: inFlight})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	tasks := bigTasks(8, 1<<20)
	// A hang lasts forever; a slow map under -race on a loaded machine
	// takes seconds: the deadline tells them apart.
	mctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	got := make([]bool, len(tasks))
	killed := !kill
	err = MapUnordered(mctx, p, func(yield func(string) bool) {
		for _, s := range tasks {
			if !yield(s) {
				return
			}
		}
	}, 1, func(i int, r string, err error) error {
		if err != nil {
			return err
		}
		if r != tasks[i] {
			t.Errorf("result %d: %d bytes, not the task's", i, len(r))
		}
		got[i] = true
		if !killed {
			// Kill the worker while it holds chunks: its replacement
			// says hello while results and re-sent chunks are large.
			killed = true
			if err := syscall.Kill(p.PIDs()[0], syscall.SIGKILL); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n := 0
		for _, ok := range got {
			if ok {
				n++
			}
		}
		t.Fatalf("map of 8 x 1 MiB, InFlight=%d: %v (%d results had arrived)", inFlight, err, n)
	}
	for i, ok := range got {
		if !ok {
			t.Errorf("task %d: no result", i)
		}
	}
	if kill && len(p.Events()) != 1 {
		t.Errorf("events %+v, want one death", p.Events())
	}
}

// TestLargeResultsNoHang is issue 15 finding 1: with a results channel
// as small as the number of workers, a reader holding a result blocked
// the worker's next result, so the worker stopped reading, while the
// dispatcher blocked sending it a chunk.
func TestLargeResultsNoHang(t *testing.T) {
	for _, inFlight := range []int{2, 3} {
		t.Run("inflight="+itoa(inFlight), func(t *testing.T) { mapBig(t, inFlight, false) })
	}
}

// TestLargeResultsReplacementNoHang is the suspected variant: a
// replacement worker's hello held while the results waiting are large.
func TestLargeResultsReplacementNoHang(t *testing.T) {
	for _, inFlight := range []int{2, 3} {
		t.Run("inflight="+itoa(inFlight), func(t *testing.T) { mapBig(t, inFlight, true) })
	}
}
