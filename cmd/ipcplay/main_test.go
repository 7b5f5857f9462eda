package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipcplay/procs"
)

// cliRole runs the whole command line in a child, as the installed binary
// would: the tests that send signals need a process of their own.
const cliRole = "ipcplay-test-cli"

func TestMain(m *testing.M) {
	registerRoles()
	procs.Register(cliRole, func(_ context.Context, args []string) error {
		os.Exit(cli(args))
		return nil
	})
	procs.Init()
	os.Exit(m.Run())
}

// runHere runs the command line in this process and returns its exit status
// and output.
func runHere(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &env{stdout: &out, stderr: &errOut})
	assertNoChildren(t)
	return code, out.String(), errOut.String()
}

func assertNoChildren(t *testing.T) {
	t.Helper()
	kids, err := procs.Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) > 0 {
		t.Fatalf("child processes left: %v", kids)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"primes", "--procs", "0"}, "--procs 0: want 1..1024"},
		{[]string{"primes", "--procs", "x"}, `invalid value "x" for flag -procs`},
		{[]string{"primes", "--procs", "5000"}, "--procs 5000: want 1..1024"},
		{[]string{"primes", "--mode", "threads"}, `--mode "threads": want procs, goroutines or both`},
		{[]string{"primes", "--check-every", "0"}, "--check-every 0: want at least 1"},
		{[]string{"primes", "--frobnicate"}, "flag provided but not defined: -frobnicate"},
		{[]string{"primes", "-5"}, "-5"},
		{[]string{"primes", "abc"}, "abc"},
		{[]string{"primes", "18446744073709551616"}, "18446744073709551616"},
		{[]string{"primes", "91", "1.5"}, "1.5"},
	} {
		code, stdout, stderr := runHere(t, tc.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if stdout != "" {
			t.Errorf("%q: wrote %q to stdout, want nothing", tc.args, stdout)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "ipcplay primes: ") ||
			!strings.HasSuffix(stderr, "(see 'ipcplay primes -h')\n") || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: stderr %q, want one line naming %q", tc.args, stderr, tc.want)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"nosuch"}, {}} {
		code, stdout, stderr := runHere(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "usage: ipcplay <command>") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", args, code, stdout, stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "primes"},
		{[]string{"--help"}, "primes"},
		{[]string{"help", "primes"}, "usage: ipcplay primes"},
		{[]string{"primes", "-h"}, "usage: ipcplay primes"},
		{[]string{"primes", "--help"}, "-check-every"},
	} {
		code, stdout, stderr := runHere(t, tc.args...)
		if code != 0 || stderr != "" || !strings.Contains(stdout, tc.want) {
			t.Errorf("%q: exit %d, stderr %q, stdout %.80q; want 0 and %q on stdout", tc.args, code, stderr, stdout, tc.want)
		}
	}
}

func TestPrimesTable(t *testing.T) {
	code, stdout, stderr := runHere(t, "primes", "--procs", "2", "91", "100000007")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"91", "100000007", "composite", "prime", "verdict:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if stderr != "" {
		t.Errorf("stderr is not a terminal, yet got %q", stderr)
	}
}

func TestPrimesJSON(t *testing.T) {
	code, stdout, stderr := runHere(t, "primes", "--json", "--procs", "3", "91", "100000007", "1000000016000000063")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		SchemaVersion int      `json:"schema_version"`
		Procs         int      `json:"procs"`
		Modes         []string `json:"modes"`
		System        struct {
			CPUs int `json:"cpus"`
		} `json:"system"`
		Results []struct {
			N           uint64   `json:"n"`
			Mode        string   `json:"mode"`
			Prime       bool     `json:"prime"`
			Factor      uint64   `json:"factor"`
			Checked     uint64   `json:"checked"`
			FullScan    uint64   `json:"full_scan"`
			StopLatency *float64 `json:"stop_latency_seconds"`
			Workers     []struct {
				PID     int    `json:"pid"`
				Checked uint64 `json:"checked"`
				Outcome string `json:"outcome"`
			} `json:"workers"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
	}
	if doc.SchemaVersion != 1 || doc.Procs != 3 || len(doc.Modes) != 2 || doc.System.CPUs < 1 {
		t.Fatalf("header = %+v", doc)
	}
	if len(doc.Results) != 6 {
		t.Fatalf("%d results, want 3 numbers x 2 modes", len(doc.Results))
	}
	for _, r := range doc.Results {
		want := r.N == 100000007
		if r.Prime != want {
			t.Errorf("%d %s: prime = %v", r.N, r.Mode, r.Prime)
		}
		if !r.Prime && (r.Factor < 2 || r.N%r.Factor != 0) {
			t.Errorf("%d %s: factor %d", r.N, r.Mode, r.Factor)
		}
		if r.Checked > r.FullScan {
			t.Errorf("%d %s: checked %d > full scan %d", r.N, r.Mode, r.Checked, r.FullScan)
		}
		// 1000000016000000063 = 1000000007 * 1000000009: the workers
		// run, one finds the factor and sets the flag.
		if r.N == 1000000016000000063 {
			if len(r.Workers) != 3 || r.StopLatency == nil {
				t.Errorf("%d %s: %d workers, stop latency %v; want 3 and a latency", r.N, r.Mode, len(r.Workers), r.StopLatency)
			}
			for _, w := range r.Workers {
				if (r.Mode == "procs") != (w.PID > 0) {
					t.Errorf("%d %s: worker pid %d", r.N, r.Mode, w.PID)
				}
			}
		}
	}
}

// startCLI starts the command line in a child and waits until it has
// started want workers of its own; it returns the child and their pids.
func startCLI(t *testing.T, want int, args ...string) (*procs.Cmd, *bytes.Buffer, []int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	c := procs.Command(ctx, cliRole, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process().Kill()
		c.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		kids, err := procs.Children(c.Pid())
		if err != nil {
			t.Fatal(err)
		}
		if len(kids) == want {
			return c, &stderr, kids
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cli has %d children after 20s, want %d", len(kids), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gone waits up to d for pid to be gone or a zombie that is not ours.
func gone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A prime near 2^57 whose trial division takes seconds on two workers.
const slowPrime = "100109100129162907"

func TestInterruptStopsEverything(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			c, stderr, workers := startCLI(t, 2, "primes", "--mode", "procs", "--procs", "2", slowPrime)
			sent := time.Now()
			if err := c.Process().Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := c.Wait()
			took := time.Since(sent)
			var ce *procs.ChildError
			if !errors.As(err, &ce) || ce.ExitCode != 128+int(sig) {
				t.Fatalf("cli after %v: %v, want exit status %d", sig, err, 128+int(sig))
			}
			if took > time.Second {
				t.Errorf("cli took %v to exit after %v, want under a second", took, sig)
			}
			if !strings.Contains(stderr.String(), "interrupted") {
				t.Errorf("stderr %q does not say it was interrupted", stderr)
			}
			for _, pid := range workers {
				if !gone(pid, 0) {
					t.Errorf("worker %d still running after the cli exited", pid)
				}
			}
		})
	}
}

func TestKilledParentTakesWorkersDown(t *testing.T) {
	c, _, workers := startCLI(t, 2, "primes", "--mode", "procs", "--procs", "2", slowPrime)
	c.Process().Signal(syscall.SIGKILL)
	c.Wait()
	for _, pid := range workers {
		if !gone(pid, 5*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("worker %d still running 5s after its parent was killed", pid)
		}
	}
}

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
