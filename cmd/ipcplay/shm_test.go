//go:build linux

package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestShmUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"shm"}, "missing subcommand"},
		{[]string{"shm", "frob"}, `unknown subcommand "frob"`},
		{[]string{"shm", "counter", "--procs", "0"}, "--procs 0: want 1..64"},
		{[]string{"shm", "counter", "--sync", "spin"}, `--sync "spin": want none, atomic, mutex or all`},
		{[]string{"shm", "counter", "--increments", "0"}, "--increments 0"},
		{[]string{"shm", "counter", "extra"}, `unexpected argument "extra"`},
		{[]string{"shm", "square", "two"}, `"two" is not a finite number`},
		{[]string{"shm", "square", "NaN"}, `"NaN" is not a finite number`},
		{[]string{"shm", "bench", "--size", "lots"}, `--size "lots"`},
		{[]string{"shm", "bench", "--size", "2GiB"}, "--size 2GiB: want 1B..1GiB"},
		{[]string{"shm", "bench", "--rounds", "0"}, "--rounds 0"},
	} {
		code, stdout, stderr := runHere(t, tc.args...)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "ipcplay shm: ") || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	for _, args := range [][]string{{"shm", "-h"}, {"shm", "counter", "-h"}, {"help", "shm"}, {"shm", "bench", "--help"}} {
		code, stdout, _ := runHere(t, args...)
		if code != 0 || !strings.Contains(stdout, "usage: ipcplay shm") {
			t.Errorf("%q: exit %d, stdout %.80q; want 0 and the usage", args, code, stdout)
		}
	}
}

func TestShmCounterJSON(t *testing.T) {
	code, stdout, stderr := runHere(t, "shm", "counter", "--json", "--procs", "4", "--increments", "5000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		SchemaVersion int `json:"schema_version"`
		Runs          []struct {
			Sync     string  `json:"sync"`
			Mode     string  `json:"mode"`
			Expected int64   `json:"expected"`
			Final    int64   `json:"final"`
			Lost     int64   `json:"lost"`
			Seconds  float64 `json:"seconds"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
	}
	if doc.SchemaVersion != 1 || len(doc.Runs) != 6 {
		t.Fatalf("%d runs, want 3 syncs x 2 modes: %s", len(doc.Runs), stdout)
	}
	for _, r := range doc.Runs {
		if r.Expected != 20000 || r.Lost != r.Expected-r.Final || r.Seconds <= 0 {
			t.Errorf("%+v", r)
		}
		if r.Sync != "none" && r.Final != r.Expected {
			t.Errorf("%s %s: final %d, want exactly %d", r.Sync, r.Mode, r.Final, r.Expected)
		}
	}
}

func TestShmSquareAndBench(t *testing.T) {
	code, stdout, stderr := runHere(t, "shm", "square", "3", "-2", "0.5")
	if code != 0 || !strings.Contains(stdout, "sum (shared value): 13.25") || !strings.Contains(stdout, "verdict:") {
		t.Errorf("square: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runHere(t, "shm", "bench", "--json", "--size", "1MiB", "--rounds", "1")
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	var doc struct {
		Paths []struct {
			Path     string  `json:"path"`
			Bytes    int64   `json:"bytes"`
			Seconds  float64 `json:"seconds"`
			GBps     float64 `json:"gbps"`
			Verified bool    `json:"verified"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
	}
	if len(doc.Paths) != 4 {
		t.Fatalf("%d paths, want copy, shm, pipe and msgpack", len(doc.Paths))
	}
	for _, p := range doc.Paths {
		if p.Bytes != 1<<20 || !p.Verified || p.Seconds <= 0 || p.GBps <= 0 {
			t.Errorf("%+v", p)
		}
	}
}
