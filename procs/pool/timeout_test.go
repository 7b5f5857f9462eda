package pool

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// roleHang squares ints, except that the task equal to args[0] sleeps for
// an hour, or stops its own process when args[1] is "stop" (a worker
// whose watchdog cannot run).
const roleHang = "pool-test-hang"

func hang(args []string) func(ctx context.Context, x int) (int, error) {
	bad, _ := strconv.Atoi(args[0])
	stop := len(args) > 1 && args[1] == "stop"
	return func(ctx context.Context, x int) (int, error) {
		if x == bad {
			if stop {
				syscall.Kill(syscall.Getpid(), syscall.SIGSTOP)
			}
			time.Sleep(time.Hour)
		}
		return x * x, nil
	}
}

func newHangPool(t *testing.T, ctx context.Context, args ...string) *Pool {
	t.Helper()
	p, err := New(ctx, Config{Role: roleHang, Args: args, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	return p
}

func TestTaskTimeout(t *testing.T) {
	for _, chunk := range []int{1, 10, 0} {
		t.Run("chunk="+strconv.Itoa(chunk), func(t *testing.T) {
			ctx := testCtx(t)
			p := newHangPool(t, ctx, "37")
			const limit = 300 * time.Millisecond
			got, err := MapWith[int, int](ctx, p, ints(100), MapOptions{ChunkSize: chunk, TaskTimeout: limit})
			var te *TaskError
			if !errors.As(err, &te) || te.Index != 37 || !errors.Is(err, ErrTaskTimeout) {
				t.Fatalf("err = %v, want task 37 timed out", err)
			}
			if joined, ok := err.(interface{ Unwrap() []error }); !ok || len(joined.Unwrap()) != 1 {
				t.Errorf("err = %v, want task 37 alone", err)
			}
			var toe *TimeoutError
			if !errors.As(err, &toe) || toe.Limit != limit {
				t.Errorf("err = %v, want a *TimeoutError of %v", err, limit)
			}
			for i, r := range got {
				if i != 37 && r != i*i {
					t.Fatalf("result %d = %d, want %d", i, r, i*i)
				}
			}
			evs := p.Events()
			if len(evs) != 1 {
				t.Fatalf("events %+v, want one", evs)
			}
			ev := evs[0]
			if !slices.Equal(ev.TimedOut, []int{37}) || ev.ExitCode != ExitHung || ev.Replacement == 0 || len(ev.Blamed) != 0 || ev.Overdue {
				t.Errorf("event %+v, want task 37 timed out, exit %d, replaced, nothing blamed", ev, ExitHung)
			}
			// The pool still works, with and without a timeout.
			if got, err := MapWith[int, int](ctx, p, []int{3, 4}, MapOptions{TaskTimeout: limit}); err != nil || got[1] != 16 {
				t.Errorf("map after a timeout: %v, %v", got, err)
			}
			if got, err := Map[int, int](ctx, p, []int{5}, 1); err != nil || got[0] != 25 {
				t.Errorf("map after a timeout: %v, %v", got, err)
			}
		})
	}
}

// TestTaskTimeoutBackstop stops the worker with SIGSTOP, so that its
// watchdog cannot report: the parent kills it once the chunk is overdue,
// and the task fails as one that kills its workers does.
func TestTaskTimeoutBackstop(t *testing.T) {
	slack := overdueSlack
	overdueSlack = 500 * time.Millisecond
	t.Cleanup(func() { overdueSlack = slack })
	ctx := testCtx(t)
	p := newHangPool(t, ctx, "5", "stop")
	got, err := MapWith[int, int](ctx, p, ints(20), MapOptions{ChunkSize: 1, TaskTimeout: 50 * time.Millisecond})
	var te *TaskError
	if !errors.As(err, &te) || te.Index != 5 || !errors.Is(err, ErrWorkerDeaths) {
		t.Fatalf("err = %v, want task 5 failed by worker deaths", err)
	}
	for i, r := range got {
		if i != 5 && r != i*i {
			t.Fatalf("result %d = %d, want %d", i, r, i*i)
		}
	}
	// Task 5's three deaths are overdue kills. (On a machine loaded enough
	// to hold a serving worker off the CPU for the short slack above, a
	// healthy chunk may be overdue too: its death is blamed, it is re-sent,
	// and its results still arrive, as checked above.)
	blamed5 := 0
	for _, ev := range p.Events() {
		if !ev.Overdue || ev.Signal != "SIGKILL" {
			t.Errorf("event %+v, want an overdue SIGKILL", ev)
		}
		if slices.Contains(ev.Blamed, 5) {
			blamed5++
		} else {
			t.Logf("a healthy chunk overdue on a loaded machine: %+v", ev)
		}
	}
	if blamed5 != DefaultMaxRetries {
		t.Errorf("task 5 blamed by %d deaths, want %d: %+v", blamed5, DefaultMaxRetries, p.Events())
	}
}
