package shmlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/procs"
)

// TestCounter checks the work done and the count reached under every sync
// and mode: each worker counts its own increments on the side, so the
// loss is measured against the work, not against the configuration.
// Under atomic and mutex a lost update fails the test; under none losses
// are the lesson and only logged, and the count must still lie between 2
// (the least any interleaving of load-add-store can leave) and the work
// done.
func TestCounter(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const workers = 4
	for _, mode := range []Mode{Procs, Goroutines} {
		// Enough work that the processes overlap: with 50,000 increments
		// each, a process was done within its first time slice, the four
		// ran one after another, none lost an update, and a mutex that
		// locked nothing passed.
		increments := 50000
		if mode == Procs {
			increments = 1000000
			if raceEnabled {
				increments /= 10 // as long in time: 17 s for the test otherwise
			}
		}
		for _, s := range Syncs {
			t.Run(fmt.Sprintf("mode=%s/sync=%s", mode, s), func(t *testing.T) {
				res, err := Counter(ctx, CounterConfig{Workers: workers, Increments: increments, Sync: s, Mode: mode})
				if err != nil {
					t.Fatal(err)
				}
				if res.Done != int64(workers*increments) {
					t.Errorf("Done = %d, want %d: the workers did not all do their increments", res.Done, workers*increments)
				}
				if res.Lost != res.Done-res.Final {
					t.Errorf("Lost = %d, want Done-Final = %d", res.Lost, res.Done-res.Final)
				}
				switch s {
				case None:
					if res.Final < 2 || res.Final > res.Done {
						t.Errorf("Final = %d, want 2..%d", res.Final, res.Done)
					}
					if res.Lost == 0 {
						t.Logf("lost no update this run: lucky, not correct (lost updates are expected without sync)")
					} else {
						t.Logf("lost %d of %d updates, as expected without sync", res.Lost, res.Done)
					}
				default:
					if res.Final != res.Done {
						t.Errorf("Final = %d, want exactly %d: %d updates lost under %s", res.Final, res.Done, res.Lost, s)
					}
				}
				if mode == Procs && (len(res.PIDs) != workers || slices.Contains(res.PIDs, os.Getpid())) {
					t.Errorf("PIDs = %v, want %d children", res.PIDs, workers)
				}
			})
		}
	}
	labtest.NoChildren(t)
}

func TestCounterErrors(t *testing.T) {
	for _, cfg := range []CounterConfig{
		{Workers: 0, Increments: 1, Sync: Atomic, Mode: Procs},
		{Workers: MaxWorkers + 1, Increments: 1, Sync: Atomic, Mode: Procs},
		{Workers: 1, Increments: -1, Sync: Atomic, Mode: Procs},
		{Workers: 1, Increments: MaxIncrements + 1, Sync: Atomic, Mode: Procs},
		{Workers: 1, Increments: 1, Sync: "spin", Mode: Procs},
		{Workers: 1, Increments: 1, Sync: Atomic, Mode: "threads"},
	} {
		if _, err := Counter(t.Context(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if s, err := ParseSync("all"); err != nil || len(s) != 3 {
		t.Errorf("ParseSync(all) = %v, %v", s, err)
	}
	if _, err := ParseSync("spin"); err == nil {
		t.Error("ParseSync(spin) = nil error")
	}
}

// TestCounterCancelled: a run cancelled while its workers count stops
// them, says why, and leaves no child behind; a goroutine run does too.
func TestCounterCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	run, stop := context.WithCancel(ctx)
	defer stop()
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		defer stop()
		for ctx.Err() == nil {
			if kids, _ := procs.Children(os.Getpid()); len(kids) == 2 {
				return // both workers started: cancel the run
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// 2 x 10^7 increments under a contended futex mutex take seconds.
	_, err := Counter(run, CounterConfig{Workers: 2, Increments: MaxIncrements, Sync: Lock, Mode: Procs})
	<-watch
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled counter: %v, want context.Canceled", err)
	}
	labtest.NoChildren(t)

	done, cancelNow := context.WithCancel(ctx)
	cancelNow()
	res, err := Counter(done, CounterConfig{Workers: 2, Increments: MaxIncrements, Sync: Lock, Mode: Goroutines})
	if !errors.Is(err, context.Canceled) || res.Done != 0 {
		t.Errorf("goroutines on a cancelled context: Done %d, %v; want 0 and context.Canceled", res.Done, err)
	}
}

func TestSquare(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := Square(ctx, []float64{1, 2, 3, -4.5})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Squares, []float64{1, 4, 9, 20.25}) || res.Sum != 34.25 {
		t.Errorf("squares %v sum %v, want [1 4 9 20.25] and 34.25", res.Squares, res.Sum)
	}
	if res.PID == 0 || res.PID == os.Getpid() {
		t.Errorf("pid %d: the work was not done by a child", res.PID)
	}
	if _, err := Square(ctx, nil); err == nil {
		t.Error("Square of nothing: no error")
	}
	labtest.NoChildren(t)
}

func TestBench(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const size = 3<<20 + 5 // not a multiple of a word or a page
	res, err := Bench(ctx, BenchConfig{Size: size, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, r := range res {
		paths = append(paths, r.Path)
		if !r.Verified || r.Bytes != size || r.Rounds != 2 || len(r.Times) != 2 || slices.Min(r.Times) != r.Elapsed {
			t.Errorf("%s: %+v", r.Path, r)
		}
		if r.Path == PathPipe && r.PipeSize < 4096 {
			t.Errorf("pipe size %d", r.PipeSize)
		}
	}
	if !slices.Equal(paths, []string{PathCopy, PathShm, PathPipe, PathMsgpack}) {
		t.Errorf("paths %v", paths)
	}
	for _, cfg := range []BenchConfig{{Size: 0, Rounds: 1}, {Size: MaxBenchSize + 1, Rounds: 1}, {Size: 10, Rounds: 0}, {Size: 10, Rounds: MaxRounds + 1}} {
		if _, err := Bench(ctx, cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	labtest.NoChildren(t)
}

func TestChecksumSeesChanges(t *testing.T) {
	ctx := t.Context()
	sum := func(b []byte) uint64 {
		t.Helper()
		h, err := checksum(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, n := range []int{100, ctxChunk + 13} {
		b := make([]byte, n)
		want, err := fill(ctx, b, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := sum(b); got != want {
			t.Fatalf("size %d: checksum after fill = %#x, fill returned %#x", n, got, want)
		}
		if other, _ := fill(ctx, b, 2); other == want {
			t.Fatalf("size %d: two seeds gave the same checksum", n)
		}
		fill(ctx, b, 1)
		b[n-1] ^= 1
		if sum(b) == want {
			t.Fatalf("size %d: a flipped last bit went unnoticed", n)
		}
		b[n-1] ^= 1
		b[0], b[8] = b[8], b[0]
		if sum(b) == want {
			t.Fatalf("size %d: swapped bytes went unnoticed", n)
		}
	}
}

// TestChunkedStopsOnCancel: fill, copy and checksum look at their context
// between pieces, so a cancelled bench stops without touching the rest of
// a large buffer.
func TestChunkedStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	src := make([]byte, 4*ctxChunk)
	dst := make([]byte, len(src))
	for i := range src {
		src[i] = 0xff
	}
	if _, err := fill(ctx, src, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("fill on a cancelled context: %v, want context.Canceled", err)
	}
	if src[len(src)-1] != 0xff {
		t.Error("fill on a cancelled context wrote to the end of the buffer")
	}
	if err := copyContext(ctx, dst, src); !errors.Is(err, context.Canceled) {
		t.Errorf("copyContext on a cancelled context: %v, want context.Canceled", err)
	}
	if dst[len(dst)-1] != 0 {
		t.Error("copyContext on a cancelled context copied the end of the buffer")
	}
	if _, err := checksum(ctx, src); !errors.Is(err, context.Canceled) {
		t.Errorf("checksum on a cancelled context: %v, want context.Canceled", err)
	}
}

// TestBenchCancelled cancels the shm path once its receiving child runs:
// the bench stops with the context's error and leaves no child.
func TestBenchCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	run, stop := context.WithCancel(ctx)
	defer stop()
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		defer stop()
		for ctx.Err() == nil {
			if kids, _ := procs.Children(os.Getpid()); len(kids) == 1 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// 100 rounds of 64 MiB: seconds of work, cancelled after the start.
	_, err := benchShm(run, BenchConfig{Size: 64 << 20, Rounds: MaxRounds}, make([]byte, 64<<20))
	<-watch
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled bench: %v, want context.Canceled", err)
	}
	labtest.NoChildren(t)
}
