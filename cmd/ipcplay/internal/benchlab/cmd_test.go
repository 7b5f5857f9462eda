package benchlab

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// runCmd runs "ipcplay ARGS" with the bench and compare commands in this
// process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	p := &base.Program{Name: "ipcplay", Commands: []*base.Command{Command(), CompareCommand()}}
	code = p.Main(ctx, base.TestEnv(&out, &errOut), args)
	return code, out.String(), errOut.String()
}

// small is a matrix that runs in well under a second: every kind of cell
// (data, notification, goroutine, a skipped one) at two sizes.
var small = []string{"bench", "--mech", "pipe,udp,eventfd,chan,chan-buf", "--size", "64,128K", "--seconds", "10ms"}

func TestBenchText(t *testing.T) {
	code, stdout, stderr := runCmd(t, small...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"round trip, median", "one-way throughput", "pipe", "chan (g)", "eventfd", "verdict:", "udp 128K: past UDP's 65,507 B"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, line := range strings.Split(stdout, "\n") {
		if n := len([]rune(line)); n > base.DefaultWidth {
			t.Errorf("line of %d columns, want at most %d: %q", n, base.DefaultWidth, line)
		}
	}
	if stderr != "" {
		t.Errorf("stderr is not a terminal, yet got %q", stderr)
	}
}

func TestBenchJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, append(small, "--json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v\n%s", err, stdout)
	}
	cells := doc.Table("cells")
	if cells == nil {
		t.Fatal("no cells table")
	}
	// pipe, udp, chan-buf at 2 sizes, chan at 8 B too, eventfd once.
	if got, want := len(cells.Rows), 2*4+1+1; got != want {
		t.Errorf("cells: %d rows, want %d", got, want)
	}
	var measured, skipped int
	for i := range cells.Rows {
		if n, ok := cells.Int(i, "n"); ok && n > 0 {
			measured++
		} else if strings.Contains(cells.String(i, "note"), "UDP") {
			skipped++
		}
	}
	if measured != 9 || skipped != 1 {
		t.Errorf("cells: %d measured, %d skipped for UDP's limit; want 9 and 1", measured, skipped)
	}
	if rt := doc.Table("reps"); rt == nil || len(rt.Rows) != 9*reps {
		t.Errorf("reps table: want %d rows (5 per measured cell)", 9*reps)
	}
	if len(doc.Verdict) == 0 || len(doc.Plots) != 2 {
		t.Errorf("verdicts %d, plots %d: want some and 2", len(doc.Verdict), len(doc.Plots))
	}
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	var names []string
	for i := range 2 {
		code, stdout, stderr := runCmd(t, "bench", "--mech", "pipe,chan", "--size", "64", "--seconds", "10ms", "--json")
		if code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
		name := filepath.Join(dir, []string{"old.json", "new.json"}[i])
		if err := os.WriteFile(name, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	code, stdout, stderr := runCmd(t, "compare", "--json", names[0], names[1])
	if code != 0 {
		t.Fatalf("compare: exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("compare output is not a valid report: %v", err)
	}
	tb := doc.Table("compare")
	if tb == nil || len(tb.Rows) != 2 {
		t.Fatalf("compare table: want 2 rows (pipe, chan at 64 B), got %v", tb)
	}
	for i := range tb.Rows {
		if p, ok := tb.Float(i, "p"); !ok || p <= 0 || p > 1 {
			t.Errorf("row %d: p = %v, want a p-value in (0, 1]", i, tb.Rows[i]["p"])
		}
	}
	if code, _, stderr := runCmd(t, "compare", names[0]); code != 2 || !strings.Contains(stderr, "want two files") {
		t.Errorf("compare with one file: exit %d, stderr %q; want 2 and a usage line", code, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--mech", "pip"}, `did you mean "pipe"`},
		{[]string{"bench", "--size", "2M"}, "--size 2M"},
		{[]string{"bench", "--placement", "three-cpus"}, "--placement three-cpus"},
		{[]string{"bench", "--seconds", "1"}, "--seconds 1"},
		{[]string{"bench", "extra"}, `unexpected argument "extra"`},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, one line naming %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

// TestCheckPerf checks only that the comparison runs and reports.
func TestCheckPerf(t *testing.T) {
	if _, err := exec.LookPath("perf"); err != nil {
		t.Skip("perf is not installed")
	}
	code, stdout, stderr := runCmd(t, "bench", "--mech", "chan", "--size", "64", "--seconds", "10ms", "--check-perf", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatal(err)
	}
	tb := doc.Table("check_perf")
	if tb == nil {
		t.Fatalf("no check_perf table; notes: %q", doc.Notes)
	}
	if len(tb.Rows) != 2*perfTurns+1 {
		t.Fatalf("check_perf: %d rows, want perf and ours in %d turns and perf once more", len(tb.Rows), perfTurns)
	}
	for i := range tb.Rows {
		r, ok := tb.Float(i, "vs_perf")
		if ours := i%2 == 1; ours != (ok && r > 0) {
			t.Errorf("check_perf row %d (%s): vs_perf = %v; want a positive ratio on our rows only", i, tb.String(i, "run"), tb.Rows[i]["vs_perf"])
		}
	}
	if ct := doc.Table("check_perf_cost"); ct != nil {
		for i := range ct.Rows {
			if sw, ok := ct.Float(i, "switches"); !ok || sw <= 0 {
				t.Errorf("check_perf_cost row %d: switches = %v, want a positive count", i, ct.Rows[i]["switches"])
			}
		}
	} else if !slices.ContainsFunc(doc.Notes, func(n string) bool { return strings.Contains(n, "no cost per round trip") }) {
		t.Errorf("neither a check_perf_cost table nor a note saying why not; notes: %q", doc.Notes)
	}
}

// TestParsePerf reads perf bench sched pipe's and perf stat -x's output as
// perf 6.1 prints them, and refuses output without the figures.
func TestParsePerf(t *testing.T) {
	bench := "# Running 'sched/pipe' benchmark:\n# Executed 20000 pipe operations between two processes\n\n     Total time: 0.292 [sec]\n\n      14.621340 usecs/op\n          68393 ops/sec\n"
	d, err := parsePerfBench([]byte(bench))
	if err != nil || d != 14621*time.Nanosecond {
		t.Errorf("parsePerfBench = %v, %v; want 14.621µs", d, err)
	}
	if _, err := parsePerfBench([]byte("perf: 'bench' is not a perf-command\n")); err == nil {
		t.Error("parsePerfBench of output without usecs/op: no error")
	}
	stat := bench + "344.57,msec,task-clock,344568459,100.00,0.630,CPUs utilized\n40176,,context-switches,344568459,100.00,116.598,K/sec\n2,,cpu-migrations,344568459,100.00,0.000,/sec\n"
	c, err := parsePerfStat([]byte(stat), 20000)
	if err != nil {
		t.Fatal(err)
	}
	if c.Switches != 40176.0/20000 || c.Migrations != 2.0/20000 || c.CPU != 17228*time.Nanosecond {
		t.Errorf("parsePerfStat = %+v; want 2.0088 switches, 0.0001 migrations, 17.228µs (truncated) a round trip", *c)
	}
	if _, err := parsePerfStat([]byte(bench+"<not counted>,,context-switches,0,100.00,,\n"), 20000); err == nil {
		t.Error("parsePerfStat with counters missing: no error")
	}
}

// TestShmCells runs the shared-memory mechanisms at a small and the
// largest size: every cell has a round trip and a throughput, and the
// shm-copy cell at 1 MiB its in-process ring beside it.
func TestShmCells(t *testing.T) {
	code, stdout, stderr := runCmd(t, "bench", "--mech", "shm-spin,shm-copy,ring", "--size", "64,1M", "--seconds", "10ms", "--no-c", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v", err)
	}
	cells := doc.Table("cells")
	if cells == nil || len(cells.Rows) != 6 {
		t.Fatalf("cells table: want 6 rows (3 mechanisms at 2 sizes), got %v", cells)
	}
	for i := range cells.Rows {
		n, _ := cells.Int(i, "n")
		mbps, _ := cells.Float(i, "mbps")
		if n <= 0 || mbps <= 0 {
			t.Errorf("cell %s %v: n = %d, MB/s = %v; want both measured", cells.String(i, "mech"), cells.Rows[i]["size"], n, mbps)
		}
	}
	ip := doc.Table("shm_in_process")
	if ip == nil || len(ip.Rows) != 1 {
		t.Fatalf("shm_in_process: want one row (shm-copy at 1 MiB), got %v", ip)
	}
	if x, ok := ip.Float(0, "thr_ratio"); !ok || x <= 0 {
		t.Errorf("shm_in_process: thr_ratio %v, want a positive ratio", ip.Rows[0]["thr_ratio"])
	}
}
