package shmlab

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"ipcplay/procs"
)

func noChildren(t *testing.T) {
	t.Helper()
	kids, err := procs.Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) > 0 {
		t.Fatalf("child processes left: %v", kids)
	}
}

func TestCounterExact(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, mode := range []Mode{Procs, Goroutines} {
		for _, s := range []Sync{Atomic, Lock} {
			cfg := CounterConfig{Workers: 4, Increments: 20000, Sync: s, Mode: mode}
			res, err := Counter(ctx, cfg)
			if err != nil {
				t.Fatalf("%s %s: %v", mode, s, err)
			}
			if res.Expected != 80000 || res.Final != 80000 || res.Lost != 0 {
				t.Errorf("%s %s: expected %d, final %d, lost %d; want 80000 exactly", mode, s, res.Expected, res.Final, res.Lost)
			}
			if mode == Procs && (len(res.PIDs) != 4 || slices.Contains(res.PIDs, os.Getpid())) {
				t.Errorf("%s %s: pids %v, want 4 children", mode, s, res.PIDs)
			}
			if res.Elapsed <= 0 {
				t.Errorf("%s %s: elapsed %v", mode, s, res.Elapsed)
			}
		}
	}
	noChildren(t)
}

// TestCounterNone checks only what an unsynchronized count can promise:
// no more than expected, and the loss accounted for.
func TestCounterNone(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, mode := range []Mode{Procs, Goroutines} {
		res, err := Counter(ctx, CounterConfig{Workers: 4, Increments: 100000, Sync: None, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		if res.Final < 1 || res.Final > res.Expected || res.Lost != res.Expected-res.Final {
			t.Errorf("%s: expected %d, final %d, lost %d", mode, res.Expected, res.Final, res.Lost)
		}
		t.Logf("%s: lost %d of %d updates", mode, res.Lost, res.Expected)
	}
	noChildren(t)
}

func TestCounterErrors(t *testing.T) {
	for _, cfg := range []CounterConfig{
		{Workers: 0, Increments: 1, Sync: Atomic, Mode: Procs},
		{Workers: MaxWorkers + 1, Increments: 1, Sync: Atomic, Mode: Procs},
		{Workers: 1, Increments: -1, Sync: Atomic, Mode: Procs},
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

// TestCounterCancelled: a cancelled run stops its children and says why.
func TestCounterCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := Counter(ctx, CounterConfig{Workers: 2, Increments: 1 << 40, Sync: Lock, Mode: Procs})
	if err == nil {
		t.Fatal("a counter of 2^41 increments finished in 300ms")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled counter: %v, want a deadline error", err)
	}
	noChildren(t)
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
	noChildren(t)
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
		if !r.Verified || r.Bytes != size || r.Rounds != 2 || r.Elapsed <= 0 || r.GBps() <= 0 {
			t.Errorf("%s: %+v", r.Path, r)
		}
		if r.Path == PathPipe && r.PipeSize < 4096 {
			t.Errorf("pipe size %d", r.PipeSize)
		}
	}
	if !slices.Equal(paths, []string{PathCopy, PathShm, PathPipe, PathMsgpack}) {
		t.Errorf("paths %v", paths)
	}
	for _, cfg := range []BenchConfig{{Size: 0, Rounds: 1}, {Size: MaxBenchSize + 1, Rounds: 1}, {Size: 10, Rounds: 0}} {
		if _, err := Bench(ctx, cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	noChildren(t)
}

func TestChecksumSeesChanges(t *testing.T) {
	b := make([]byte, 100)
	sum := fill(b, 1)
	if fill(b, 2) == sum {
		t.Fatal("two seeds gave the same checksum")
	}
	fill(b, 1)
	b[99] ^= 1
	if checksum(b) == sum {
		t.Fatal("a flipped last bit went unnoticed")
	}
	b[99] ^= 1
	b[0], b[8] = b[8], b[0]
	if checksum(b) == sum {
		t.Fatal("swapped bytes went unnoticed")
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"4096", 4096}, {"64MiB", 64 << 20}, {"8M", 8 << 20}, {"8m", 8 << 20}, {"1G", 1 << 30},
		{"2KiB", 2048}, {"2k", 2048}, {"3MB", 3e6}, {"1.5MiB", 3 << 19}, {"100B", 100}, {" 1K ", 1024},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1e3", "x", "1TiB", "NaN", "Inf", "99999999999G"} {
		if n, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, n)
		}
	}
	for _, tc := range []struct {
		n    int64
		want string
	}{{64 << 20, "64MiB"}, {1 << 30, "1GiB"}, {1536, "1536B"}, {2048, "2KiB"}, {5, "5B"}} {
		if got := FormatSize(tc.n); got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
