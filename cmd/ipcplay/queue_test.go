//go:build linux

package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestQueueUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"queue", "--producers", "0"}, "producers 0"},
		{[]string{"queue", "--capacity", "0"}, "capacity 0"},
		{[]string{"queue", "--mode", "threads"}, `--mode "threads"`},
		{[]string{"queue", "--lab", "nope"}, `--lab "nope"`},
		{[]string{"queue", "extra"}, `unexpected argument "extra"`},
	} {
		code, _, stderr := runHere(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestQueueJSON(t *testing.T) {
	code, stdout, stderr := runHere(t, "queue", "--messages", "4000", "--capacity", "32", "--window", "8", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc queueDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	if len(doc.Runs) != 2 || doc.Runs[0].Mode != "processes" || doc.Runs[1].Mode != "goroutines" {
		t.Fatalf("runs: %+v", doc.Runs)
	}
	for _, r := range doc.Runs {
		if !r.ExactlyOnce || r.Sent != 4000 || r.Received != 4000 || r.Lost != 0 || r.Duplicates != 0 ||
			r.MessagesPerSecond <= 0 || r.LatencyP99us < r.LatencyP50us {
			t.Errorf("run %+v", r)
		}
	}
}

func TestQueuePoisonPillTable(t *testing.T) {
	code, stdout, stderr := runHere(t, "queue", "--lab", "poison-pill", "--messages", "2000", "--watchdog", "1s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"poison-pill-short", "verdict: Close and 2 pills", "left 1 consumer"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestQueueJoinDeadlockJSON(t *testing.T) {
	code, stdout, stderr := runHere(t, "queue", "--lab", "join-deadlock", "--capacity", "16", "--watchdog", "300ms", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc deadlockDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	if len(doc.Runs) != 2 {
		t.Fatalf("runs: %+v", doc.Runs)
	}
	for _, r := range doc.Runs {
		if !r.Deadlocked || r.KilledBy != "killed" || r.DrainReceived != r.Messages || r.DrainExitCode != 0 {
			t.Errorf("run %+v", r)
		}
	}
}
