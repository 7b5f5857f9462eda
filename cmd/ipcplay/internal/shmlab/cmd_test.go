package shmlab

import (
	"strings"
	"testing"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/cmd/ipcplay/internal/report"
)

// runCmd runs "ipcplay shm ARGS" in this process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return labtest.Run(t, []*base.Command{Command()}, append([]string{"shm"}, args...)...)
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing subcommand: want counter, square, bench, cond or recovery"},
		{[]string{"frob"}, `unknown subcommand "frob"`},
		{[]string{"counter", "--procs", "0"}, "--procs 0: want a whole number from 1 to 64"},
		{[]string{"counter", "--increments", "9223372036854775807"}, "--increments 9223372036854775807: want a whole number from 1 to 10,000,000"},
		{[]string{"counter", "--increments", "0"}, "--increments 0: want a whole number from 1"},
		{[]string{"counter", "--sync", "spin"}, "--sync spin: want none, atomic, mutex or all"},
		{[]string{"counter", "--mode", "processes"}, "want procs, goroutines or both"},
		{[]string{"counter", "extra"}, `unexpected argument "extra"`},
		{[]string{"square", "two"}, `"two" is not a finite number`},
		{[]string{"square", "NaN"}, `"NaN" is not a finite number`},
		{[]string{"bench", "--size", "lots"}, `--size lots: size "lots": want a byte count`},
		{[]string{"bench", "--size", "2GiB"}, "--size 2GiB: want a size from 1B to 1GiB"},
		{[]string{"bench", "--size", "1TiB"}, "want a size from 1B to 1GiB"},
		{[]string{"bench", "--rounds", "0"}, "--rounds 0: want a whole number from 1 to 100"},
		{[]string{"bench", "--rounds", "10000000"}, "--rounds 10000000: want a whole number from 1 to 100"},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 ||
			!strings.HasPrefix(stderr, "ipcplay shm") || !strings.Contains(stderr, tc.want) {
			t.Errorf("shm %q: exit %d, stdout %q, stderr %q; want 2 and one line with %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	for _, args := range [][]string{{"-h"}, {"counter", "-h"}, {"bench", "--help"}, {"square", "help"}} {
		code, stdout, _ := runCmd(t, args...)
		if code != 0 || !strings.Contains(stdout, "usage: ipcplay shm") || !strings.Contains(stdout, "  ipcplay shm ") {
			t.Errorf("shm %q: exit %d, stdout %.80q; want 0, the usage and examples", args, code, stdout)
		}
	}
}

// fits checks that every line of the default output fits 80 columns.
func fits(t *testing.T, out string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if n := len([]rune(l)); n > base.DefaultWidth {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
}

func TestCounterCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, "counter", "--procs", "3", "--increments", "20000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fits(t, stdout)
	for _, want := range []string{"SYNC", "PER INCR ns", "none", "atomic", "mutex", "goroutines", "60,000",
		"verdict: lost updates without synchronization: procs lost", "verdict: every atomic and mutex count was exact"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCmd(t, "counter", "--json", "--procs", "4", "--increments", "5000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v\n%s", err, stdout)
	}
	runs := doc.Table("runs")
	if runs == nil || len(runs.Rows) != 6 || len(doc.Verdict) < 2 {
		t.Fatalf("runs = %+v, verdict %q; want 3 syncs x 2 modes and a verdict", runs, doc.Verdict)
	}
	for i := range runs.Rows {
		sync, mode := runs.String(i, "sync"), runs.String(i, "mode")
		done, _ := runs.Int(i, "done")
		final, _ := runs.Int(i, "final")
		lost, _ := runs.Int(i, "lost")
		if done != 20000 || lost != done-final {
			t.Errorf("%s %s: done %d, final %d, lost %d; want 20000 done, lost = done - final", sync, mode, done, final, lost)
		}
		if _, ok := runs.Int(i, "elapsed_ns"); !ok {
			t.Errorf("%s %s: no elapsed_ns", sync, mode)
		}
		if sync != "none" && final != done {
			t.Errorf("%s %s: final %d, want exactly %d", sync, mode, final, done)
		}
	}

	code, stdout, stderr = runCmd(t, "counter", "--mode", "goroutines", "--sync", "atomic", "--procs", "2", "--increments", "10")
	if code != 0 || strings.Contains(stdout, "procs") || !strings.Contains(stdout, "exact") {
		t.Errorf("--mode goroutines --sync atomic: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
}

func TestSquareCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, "square", "3", "-2", "0.5")
	if code != 0 || !strings.Contains(stdout, "verdict: sum (shared value): 13.25.") {
		t.Errorf("square: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	fits(t, stdout)
	code, stdout, stderr = runCmd(t, "square", "--json", "1.5", "2.5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v\n%s", err, stdout)
	}
	sq := doc.Table("squares")
	for i, want := range []float64{2.25, 6.25} {
		if got, _ := sq.Float(i, "square"); got != want || !sq.Bool(i, "ok") {
			t.Errorf("square %d = %v (ok %v), want %v", i, got, sq.Bool(i, "ok"), want)
		}
	}
}

func TestBenchCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, "bench", "--size", "1MiB", "--rounds", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fits(t, stdout)
	for _, want := range []string{"PATH", "msgpack", "verdict: through a shared array"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = runCmd(t, "bench", "--json", "--size", "1.5M", "--rounds", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v\n%s", err, stdout)
	}
	paths := doc.Table("paths")
	if paths == nil || len(paths.Rows) != 4 {
		t.Fatalf("paths = %+v, want copy, shm, pipe and msgpack", paths)
	}
	for i := range paths.Rows {
		if n, _ := paths.Int(i, "bytes"); n != 3<<19 || !paths.Bool(i, "verified") {
			t.Errorf("%s: bytes %d, verified %v", paths.String(i, "path"), n, paths.Bool(i, "verified"))
		}
	}
	if rounds := doc.Table("rounds"); rounds == nil || len(rounds.Rows) != 8 {
		t.Errorf("rounds table = %+v, want 4 paths x 2 rounds", rounds)
	}
	if len(doc.Plots) != 1 || len(doc.Plots[0].Lines) != 4 {
		t.Errorf("plots = %+v, want one with a line per path", doc.Plots)
	}
}

func TestRecoveryCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, "recovery", "--kill", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fits(t, stdout)
	flat := strings.ReplaceAll(stdout, "\n  ", " ") // wrapped lines joined
	for _, want := range []string{"PRIMITIVE  KILLED  N  MEDIAN ms  MAX ms", "verdict: a dead mutex holder is detected in a median",
		"every waiter got the error naming the dead process", `"shared barrier: party pid `} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCmd(t, "recovery", "--json", "--kill", "3", "--kind", "rlock")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v\n%s", err, stdout)
	}
	rec, kills := doc.Table("recovery"), doc.Table("recovery_kills")
	if rec == nil || len(rec.Rows) != 1 || kills == nil || len(kills.Rows) != 3 {
		t.Fatalf("recovery = %+v, kills = %+v; want one primitive killed 3 times", rec, kills)
	}
	n, _ := rec.Int(0, "kills")
	med, _ := rec.Int(0, "median_ns")
	hi, _ := rec.Int(0, "max_ns")
	if rec.String(0, "primitive") != "rlock" || n != 3 || med > hi {
		t.Errorf("row = %s n=%d median %d max %d; want rlock, 3 kills, median <= max", rec.String(0, "primitive"), n, med, hi)
	}
	var most int64
	for i := range kills.Rows {
		d, ok := kills.Int(i, "took_ns")
		if !ok || d <= 0 {
			t.Errorf("kill %d took %d ns", i, d)
		}
		most = max(most, d)
	}
	if most != hi {
		t.Errorf("max_ns = %d, the kills' largest %d", hi, most)
	}
}
