package factor

import (
	"strings"
	"testing"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/cmd/ipcplay/internal/report"
)

// runCmd runs "ipcplay factor ARGS" in this process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return labtest.Run(t, []*base.Command{Command()}, append([]string{"factor"}, args...)...)
}

func TestCmdUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--procs", "0"}, "--procs 0: want a whole number from 1 to 256"},
		{[]string{"--procs", "1000"}, "--procs 1000: want a whole number from 1 to 256"},
		{[]string{"--chunksize", "-1"}, "--chunksize -1: want a whole number from 0"},
		{[]string{"--chunksize", "10", "--sweep"}, "--chunksize and --sweep: choose one"},
		{[]string{"--upto", "0"}, "--upto 0: want a whole number from 1 to 20,000,000"},
		{[]string{"--upto", "-1"}, "--upto -1: want a whole number from 1 to 20,000,000"},
		{[]string{"7"}, `unexpected argument "7"`},
	} {
		code, _, stderr := runCmd(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestCmdTable(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--upto", "20000", "--procs", "2", "--chunksize", "100", "--kill-worker")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"procs", "goroutines", "worker deaths:", "SIGKILL", "verdict: every sum verified"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCmdJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--upto", "5000", "--procs", "2", "--sweep", "--kill-worker", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	want := SieveSum(5000)
	runs := doc.Table("runs")
	if len(runs.Rows) != 2*len(sweepSizes) {
		t.Fatalf("%d runs, want %d", len(runs.Rows), 2*len(sweepSizes))
	}
	for i := range runs.Rows {
		sum, _ := runs.Int(i, "sum_of_factors")
		if uint64(sum) != want || !runs.Bool(i, "verified") {
			t.Errorf("run %v: sum %d, want %d", runs.Rows[i], sum, want)
		}
	}
	// A kill near the end of a run may land on a worker whose last results
	// are already on their way, and the map ends before the death is seen;
	// the many-chunk runs always see theirs.
	deaths := doc.Table("deaths")
	perChunk := map[int64]int{}
	for i := range deaths.Rows {
		chunk, _ := deaths.Int(i, "chunk")
		n, _ := deaths.Int(i, "resent_count")
		perChunk[chunk]++
		if deaths.String(i, "exit") != "SIGKILL" || n == 0 {
			t.Errorf("death %v: want a SIGKILL with tasks re-sent", deaths.Rows[i])
		}
	}
	for _, c := range []int64{1, 10} {
		if perChunk[c] != 1 {
			t.Errorf("chunk %d: %d deaths, want 1", c, perChunk[c])
		}
	}
	if len(doc.Plots) != 1 || len(doc.Plots[0].Lines[0].Points) != len(sweepSizes) {
		t.Errorf("plots = %+v, want the overhead against chunk size", doc.Plots)
	}
}

func TestCmdRecovery(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--upto", "20000", "--procs", "2", "--kill", "3", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	rec, kills := doc.Table("recovery"), doc.Table("recovery_kills")
	if rec == nil || len(rec.Rows) != 2 || kills == nil || len(kills.Rows) != 3 {
		t.Fatalf("recovery = %+v, kills = %+v; want 2 rows and 3 kills", rec, kills)
	}
	for i := range rec.Rows {
		n, _ := rec.Int(i, "kills")
		med, _ := rec.Int(i, "median_ns")
		hi, _ := rec.Int(i, "max_ns")
		if n != 3 || med > hi {
			t.Errorf("%s: n=%d median %d max %d; want 3 kills, median <= max", rec.String(i, "until"), n, med, hi)
		}
	}
	if got := rec.String(1, "observed"); got != "every result exactly once" {
		t.Errorf("the map saw %q, want every result exactly once", got)
	}
	for i := range kills.Rows {
		handled, _ := kills.Int(i, "handled_ns")
		redone, _ := kills.Int(i, "redone_ns")
		pid, _ := kills.Int(i, "pid")
		by, _ := kills.Int(i, "replaced_by")
		if handled <= 0 || redone < handled || pid <= 0 || by <= 0 || by == pid {
			t.Errorf("kill %d: pid %d replaced by %d, handled %d ns, re-done %d ns", i, pid, by, handled, redone)
		}
	}
	if !strings.Contains(strings.Join(doc.Verdict, "\n"), "every result came exactly once") {
		t.Errorf("verdict %q says nothing of exactly once", doc.Verdict)
	}
}
