package primes

import (
	"encoding/json"
	"strings"
	"testing"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/cmd/ipcplay/internal/report"
)

// runCmd runs "ipcplay primes ARGS" in this process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return labtest.Run(t, []*base.Command{Command()}, append([]string{"primes"}, args...)...)
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"primes", "--procs", "0"}, "--procs 0: want a whole number from 1 to 256"},
		{[]string{"primes", "--procs", "x"}, "--procs x: want a whole number from 1 to 256"},
		{[]string{"primes", "--procs", "5000"}, "--procs 5000: want a whole number from 1 to 256"},
		{[]string{"primes", "--mode", "threads"}, `--mode threads: want procs, goroutines or both`},
		{[]string{"primes", "--mode", "processes"}, `want procs, goroutines or both`},
		{[]string{"primes", "--check-every", "0"}, "--check-every 0: want a whole number from 1"},
		{[]string{"primes", "--frobnicate"}, "unknown flag --frobnicate"},
		{[]string{"primes", "-5"}, "-5"},
		{[]string{"primes", "abc"}, "abc"},
		{[]string{"primes", "18446744073709551616"}, "18446744073709551616"},
		{[]string{"primes", "91", "1.5"}, "1.5"},
	} {
		code, stdout, stderr := runCmd(t, tc.args[1:]...)
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

func TestPrimesTable(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--procs", "2", "91", "100000007")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"91", "100000007", "PRIME", "no", "yes", "verdict:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if stderr != "" {
		t.Errorf("stderr is not a terminal, yet got %q", stderr)
	}
}

func TestPrimesJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--json", "--procs", "3", "91", "100000007", "1000000016000000063")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v\n%s", err, stdout)
	}
	if doc.Config["procs"] != json.Number("3") || len(doc.Verdict) == 0 {
		t.Fatalf("config = %v, verdict = %q", doc.Config, doc.Verdict)
	}
	res := doc.Table("results")
	if res == nil || len(res.Rows) != 6 {
		t.Fatalf("results = %+v, want 3 numbers x 2 modes", res)
	}
	for i := range res.Rows {
		n, _ := res.Int(i, "n")
		mode := res.String(i, "mode")
		prime := res.Bool(i, "prime")
		if want := n == 100000007; prime != want {
			t.Errorf("%d %s: prime = %v", n, mode, prime)
		}
		if f, ok := res.Int(i, "factor"); !prime && (!ok || f < 2 || n%f != 0) {
			t.Errorf("%d %s: factor %d", n, mode, f)
		}
		// 1000000016000000063 = 1000000007 * 1000000009: the workers
		// run, one finds the factor and sets the flag.
		if n == 1000000016000000063 {
			if _, ok := res.Int(i, "stop_latency_ns"); !ok {
				t.Errorf("%d %s: no stop latency", n, mode)
			}
		}
	}
	workers := doc.Table("workers")
	procs, gor := 0, 0
	for i := range workers.Rows {
		pid, ok := workers.Int(i, "pid")
		switch workers.String(i, "mode") {
		case "procs":
			procs++
			if !ok || pid <= 0 {
				t.Errorf("procs worker %d: pid %d", i, pid)
			}
		case "goroutines":
			gor++
			if ok {
				t.Errorf("goroutine worker %d: pid %d", i, pid)
			}
		}
	}
	// 100000007 and 1000000016000000063 reach the workers; 91 does not.
	if procs != 6 || gor != 6 {
		t.Errorf("%d procs workers and %d goroutine workers, want 6 and 6", procs, gor)
	}
}
