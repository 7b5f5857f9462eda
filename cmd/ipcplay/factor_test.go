//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipcplay/procs"
)

func TestFactorUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"factor", "--procs", "0"}, "--procs 0: want 1..1024"},
		{[]string{"factor", "--chunksize", "0"}, "--chunksize 0: want at least 1"},
		{[]string{"factor", "--chunksize", "10", "--sweep"}, "--chunksize and --sweep: choose one"},
		{[]string{"factor", "--upto", "0"}, "--upto 0: want 1.."},
		{[]string{"factor", "7"}, `unexpected argument "7"`},
	} {
		code, _, stderr := runHere(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestFactorTable(t *testing.T) {
	code, stdout, stderr := runHere(t, "factor", "--upto", "20000", "--procs", "2", "--chunksize", "100", "--kill-worker")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"procs", "goroutines", "worker deaths:", "SIGKILL", "verdict: every sum verified"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestFactorJSON(t *testing.T) {
	code, stdout, stderr := runHere(t, "factor", "--upto", "5000", "--procs", "2", "--sweep", "--kill-worker", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		ExpectedSum uint64 `json:"expected_sum_of_factors"`
		Verified    bool   `json:"verified"`
		Runs        []struct {
			Mode           string  `json:"mode"`
			ChunkSize      int     `json:"chunksize"`
			Seconds        float64 `json:"seconds"`
			TasksPerSecond float64 `json:"tasks_per_second"`
			SumOfFactors   uint64  `json:"sum_of_factors"`
			Events         []struct {
				PID    int      `json:"pid"`
				Signal string   `json:"signal"`
				Resent [][2]int `json:"resent"`
				Count  int      `json:"resent_count"`
			} `json:"events"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if !doc.Verified || len(doc.Runs) != 2*len(sweepSizes) {
		t.Fatalf("verified %v, %d runs", doc.Verified, len(doc.Runs))
	}
	// A kill near the end of a run may land on a worker whose last results
	// are already on their way, and the map ends before the death is seen;
	// the many-chunk runs always see theirs.
	for _, r := range doc.Runs {
		if r.SumOfFactors != doc.ExpectedSum || r.TasksPerSecond <= 0 {
			t.Errorf("run %+v", r)
		}
		if r.Mode != "procs" {
			continue
		}
		if len(r.Events) > 1 || (r.ChunkSize <= 10 && len(r.Events) != 1) {
			t.Errorf("procs run at chunk %d: events %+v, want one SIGKILL", r.ChunkSize, r.Events)
		}
		for _, ev := range r.Events {
			if ev.Signal != "SIGKILL" || len(ev.Resent) == 0 || ev.Count == 0 {
				t.Errorf("procs run at chunk %d: event %+v", r.ChunkSize, ev)
			}
		}
	}
}

func TestFactorInterruptStopsPool(t *testing.T) {
	c, stderr, workers := startCLI(t, 2, "factor", "--procs", "2", "--upto", "20000000")
	sent := time.Now()
	if err := c.Process().Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := c.Wait()
	took := time.Since(sent)
	var ce *procs.ChildError
	if !errors.As(err, &ce) || ce.ExitCode != 128+int(syscall.SIGINT) {
		t.Fatalf("cli after SIGINT: %v (stderr %q), want exit status %d", err, stderr, 128+int(syscall.SIGINT))
	}
	if took > 2*time.Second {
		t.Errorf("cli took %v to exit after SIGINT", took)
	}
	for _, pid := range workers {
		if !gone(pid, 0) {
			t.Errorf("worker %d still running after the cli exited", pid)
		}
	}
}
