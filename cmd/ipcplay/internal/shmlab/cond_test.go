package shmlab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/cmd/ipcplay/internal/report"
)

func TestCondCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, "cond", "--items", "5000", "--capacity", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fits(t, stdout)
	for _, want := range []string{"MODE", "ITEMS/s", "FUTEX/ITEM", "procs", "goroutines", "P50 µs",
		"verdict: every item was taken exactly once; the buffer never held over 4",
		"verdict: hand-offs between processes ran at"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCmd(t, "cond", "--json", "--items", "3000", "--consumers", "3", "--capacity", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v\n%s", err, stdout)
	}
	runs := doc.Table("runs")
	if runs == nil || len(runs.Rows) != 2 {
		t.Fatalf("runs = %+v, want a procs and a goroutines row", runs)
	}
	for i, mode := range []string{"procs", "goroutines"} {
		consumed, _ := runs.Int(i, "consumed")
		fill, _ := runs.Int(i, "max_fill")
		if got := runs.String(i, "mode"); got != mode || consumed != 3000 || !runs.Bool(i, "exactly_once") || fill < 1 || fill > 2 {
			t.Errorf("row %d: mode %s, consumed %d, exactly once %v, max fill %d; want %s, 3000, true, 1..2",
				i, got, consumed, runs.Bool(i, "exactly_once"), fill, mode)
		}
	}
	if w := doc.Table("wakeups"); w == nil || len(w.Rows) != 4 {
		t.Errorf("wakeups = %+v, want consumers and producer for each mode", w)
	}
	if doc.Table("cost") == nil || len(doc.Verdict) != 2 {
		t.Errorf("cost table %v, verdict %q; want a cost table and two verdicts", doc.Table("cost") != nil, doc.Verdict)
	}

	code, stdout, stderr = runCmd(t, "cond", "--mode", "goroutines", "--items", "10", "--consumers", "1")
	if code != 0 || strings.Contains(stdout, "procs") || !strings.Contains(stdout, "hand-offs between goroutines") {
		t.Errorf("--mode goroutines: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
}

func TestCondUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cond", "--consumers", "0"}, "--consumers 0: want a whole number from 1 to 32"},
		{[]string{"cond", "--consumers", "33"}, "--consumers 33: want a whole number from 1 to 32"},
		{[]string{"cond", "--items", "0"}, "--items 0: want a whole number from 1 to 10,000,000"},
		{[]string{"cond", "--items", "100000000"}, "--items 100000000: want a whole number from 1 to 10,000,000"},
		{[]string{"cond", "--capacity", "4097"}, "--capacity 4097: want a whole number from 1 to 4,096"},
		{[]string{"cond", "--mode", "threads"}, "want procs, goroutines or both"},
		{[]string{"cond", "extra"}, `unexpected argument "extra"`},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("shm %q: exit %d, stdout %q, stderr %q; want 2 and one line with %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

// TestCond runs the buffer in both modes at the extremes: one slot (every
// put and take may wait) and a slot for every item (the producer never
// waits).
func TestCond(t *testing.T) {
	for _, mode := range []Mode{Procs, Goroutines} {
		for _, cfg := range []CondConfig{
			{Consumers: 3, Items: 1000, Capacity: 1},
			{Consumers: 1, Items: 100, Capacity: 100},
		} {
			cfg.Mode = mode
			t.Run(fmt.Sprintf("mode=%s/consumers=%d/capacity=%d", mode, cfg.Consumers, cfg.Capacity), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				res, err := Cond(ctx, cfg)
				labtest.NoChildren(t)
				if err != nil {
					t.Fatal(err)
				}
				if !res.ExactlyOnce() || res.Overfull != 0 {
					t.Errorf("consumed %d (sum %d, squares %d), %d over or under; want %d (sum %d, squares %d), 0",
						res.Consumed, res.Sum, res.SumSquares, res.Overfull, cfg.Items, res.WantSum, res.WantSquares)
				}
				if res.MaxFill < 1 || res.MaxFill > int64(cfg.Capacity) {
					t.Errorf("max fill %d, want 1..%d", res.MaxFill, cfg.Capacity)
				}
				if cfg.Capacity >= cfg.Items && res.ProducerWaits != 0 {
					t.Errorf("the producer waited %d times on a buffer that holds every item", res.ProducerWaits)
				}
				for _, lat := range [][]time.Duration{res.ConsumerWake, res.ProducerWake} {
					if len(lat) > condSamples*cfg.Consumers {
						t.Errorf("%d samples, want at most %d per worker", len(lat), condSamples)
					}
					for _, d := range lat {
						if d < 0 {
							t.Fatalf("a negative wake-up latency %v: the stamps are not one clock", d)
						}
					}
				}
				if mode == Procs && len(res.PIDs) != 1+cfg.Consumers {
					t.Errorf("pids %v, want the producer and %d consumers", res.PIDs, cfg.Consumers)
				}
			})
		}
	}
}

// TestCondExactlyOnce checks that the check itself sees a lost item made
// up for by a duplicate, which a count alone would miss.
func TestCondExactlyOnce(t *testing.T) {
	want := CondResult{CondConfig: CondConfig{Items: 4}, WantSum: 10, WantSquares: 30}
	for _, tc := range []struct {
		name  string
		taken []uint64
		ok    bool
	}{
		{"all", []uint64{1, 2, 3, 4}, true},
		{"reordered", []uint64{4, 2, 1, 3}, true},
		{"lost", []uint64{1, 2, 3}, false},
		{"duplicated", []uint64{1, 2, 3, 4, 4}, false},
		{"2 lost for 1 and 3 twice", []uint64{1, 1, 3, 3}, false},
		{"1 and 4 twice for 2 and 3", []uint64{1, 1, 4, 4}, false},
	} {
		r := want
		for _, v := range tc.taken {
			r.Consumed++
			r.Sum += v
			r.SumSquares += v * v
		}
		if got := r.ExactlyOnce(); got != tc.ok {
			t.Errorf("%s: ExactlyOnce() = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

// TestCondCancel ends a run far too long to finish by its context: Cond
// returns the context's error and leaves no child behind.
func TestCondCancel(t *testing.T) {
	for _, mode := range []Mode{Procs, Goroutines} {
		t.Run("mode="+string(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			_, err := Cond(ctx, CondConfig{Consumers: 2, Items: MaxItems, Capacity: 1, Mode: mode})
			labtest.NoChildren(t)
			if err == nil {
				t.Fatalf("Cond of %d items returned nil within its 200 ms context", MaxItems)
			}
			if mode == Goroutines && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Cond = %v, want the context's error", err)
			}
		})
	}
}
