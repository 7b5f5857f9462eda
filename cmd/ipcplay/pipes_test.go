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

func TestPipesUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pipes"}, "missing subcommand"},
		{[]string{"pipes", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"pipes", "deadlock", "--scenario", "nope"}, `unknown scenario "nope"`},
		{[]string{"pipes", "deadlock", "--bytes", "12Q"}, `size "12Q"`},
		{[]string{"pipes", "deadlock", "--bytes", "0"}, `size "0"`},
		{[]string{"pipes", "deadlock", "--timeout", "1ns"}, "--timeout 1ns"},
		{[]string{"pipes", "capacity", "extra"}, `unexpected argument "extra"`},
		{[]string{"pipes", "bench", "--rounds", "0"}, "--rounds 0"},
		{[]string{"pipes", "bench", "--bytes", "1M,2M"}, "want one size"},
	} {
		code, _, stderr := runHere(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestPipesDeadlockJSON(t *testing.T) {
	code, stdout, stderr := runHere(t, "pipes", "deadlock", "--scenario", "wait-then-read", "--bytes", "32K,1M", "--timeout", "300ms", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		PipeCapacity int `json:"pipe_capacity"`
		Runs         []struct {
			Scenario          string          `json:"scenario"`
			Bytes             int64           `json:"bytes"`
			Deadlocked        bool            `json:"deadlocked"`
			BlockedAfterBytes int64           `json:"blocked_after_bytes"`
			Evidence          *map[string]any `json:"evidence"`
			FixedCompleted    bool            `json:"fixed_completed"`
			FixedSeconds      float64         `json:"fixed_seconds"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if doc.PipeCapacity <= 0 || len(doc.Runs) != 2 {
		t.Fatalf("%s", stdout)
	}
	small, big := doc.Runs[0], doc.Runs[1]
	if small.Deadlocked || small.Evidence != nil || !small.FixedCompleted {
		t.Errorf("32K run: %+v", small)
	}
	if !big.Deadlocked || big.Evidence == nil || (*big.Evidence)["state"] != "S" || !big.FixedCompleted ||
		big.BlockedAfterBytes != int64(doc.PipeCapacity) {
		t.Errorf("1M run: %+v", big)
	}
}

func TestPipesCapacity(t *testing.T) {
	code, stdout, stderr := runHere(t, "pipes", "capacity")
	if code != 0 || !strings.Contains(stdout, "verdict: ") || !strings.Contains(stdout, "agrees") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestPipesBenchJSON(t *testing.T) {
	code, stdout, stderr := runHere(t, "pipes", "bench", "--rounds", "200", "--bytes", "2M", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Runs []struct {
			Test        string   `json:"test"`
			Path        string   `json:"path"`
			Mode        string   `json:"mode"`
			PipeSize    int      `json:"pipe_size"`
			RTTMedianUS *float64 `json:"rtt_median_us"`
			RTTP99US    *float64 `json:"rtt_p99_us"`
			GBps        *float64 `json:"gbps"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	seen := map[string]bool{}
	for _, r := range doc.Runs {
		seen[r.Test+"/"+r.Mode+"/"+r.Path] = true
		switch r.Test {
		case "pingpong":
			if r.RTTMedianUS == nil || r.RTTP99US == nil || *r.RTTMedianUS <= 0 {
				t.Errorf("%+v", r)
			}
		case "throughput":
			if r.GBps == nil || *r.GBps <= 0 {
				t.Errorf("%+v", r)
			}
		default:
			t.Errorf("unknown test %q", r.Test)
		}
	}
	for _, want := range []string{"pingpong/procs/raw", "pingpong/procs/file", "pingpong/goroutines/chan",
		"throughput/procs/raw", "throughput/procs/file", "throughput/goroutines/io.Pipe", "throughput/goroutines/chan"} {
		if !seen[want] {
			t.Errorf("no %s run in %s", want, stdout)
		}
	}
	code, stdout, _ = runHere(t, "pipes", "bench", "--rounds", "100", "--bytes", "1M")
	if code != 0 || !strings.Contains(stdout, "verdict: ") {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
}

func TestPipesHelp(t *testing.T) {
	for _, args := range [][]string{{"pipes", "-h"}, {"help", "pipes"}, {"pipes", "deadlock", "-h"}, {"pipes", "bench", "-h"}} {
		code, stdout, _ := runHere(t, args...)
		if code != 0 || !strings.HasPrefix(stdout, "usage: ipcplay pipes") {
			t.Errorf("%v: exit %d, %q", args, code, stdout)
		}
	}
}

func TestPipesDeadlockInterrupted(t *testing.T) {
	// A deadlocked child and a watchdog that would wait 30s: Ctrl-C must
	// end both at once.
	c, stderr, kids := startCLI(t, 1, "pipes", "deadlock", "--scenario", "wait-then-read", "--timeout", "30s")
	sent := time.Now()
	if err := c.Process().Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := c.Wait()
	var ce *procs.ChildError
	if !errors.As(err, &ce) || ce.ExitCode != 130 {
		t.Fatalf("after SIGINT: %v, want exit status 130", err)
	}
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("took %v to exit", took)
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr %q", stderr)
	}
	if !gone(kids[0], time.Second) {
		t.Errorf("child %d still running", kids[0])
	}
}
