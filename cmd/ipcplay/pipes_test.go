package main

import (
	"encoding/json"
	"strings"
	"testing"
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
