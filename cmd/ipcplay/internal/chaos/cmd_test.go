package chaos

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/cmd/ipcplay/internal/report"
)

// runCmd runs "ipcplay chaos ARGS" in this process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return labtest.Run(t, []*base.Command{Command()}, append([]string{"chaos"}, args...)...)
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kills", "0"}, "--kills 0: want a whole number from 1 to 100,000"},
		{[]string{"--kills", "100001"}, "--kills 100001: want a whole number from 1 to 100,000"},
		{[]string{"--seed", "-1"}, "--seed -1: want a whole number from 0 to"},
		{[]string{"--seed", "9007199254740992"}, "want a whole number from 0 to 9,007,199,254,740,991"},
		{[]string{"--target", "pol"}, `did you mean "pool"?`},
		{[]string{"--deadline", "1"}, "--deadline 1: want a duration with a unit"},
		{[]string{"--deadline", "11m"}, "want a duration from 1s to 10m0s"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		if code != 2 || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q; want 2 and nothing", tc.args, code, stdout)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "ipcplay chaos: ") || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: stderr %q, want one line naming %q", tc.args, stderr, tc.want)
		}
	}
}

// chaosJSON runs "chaos ARGS --json" within deadline and returns the
// validated report.
func chaosJSON(t *testing.T, deadline time.Duration, args ...string) *report.Doc {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	var out, errOut bytes.Buffer
	p := &base.Program{Name: "ipcplay", Commands: []*base.Command{Command()}}
	code := p.Main(ctx, base.TestEnv(&out, &errOut), append(append([]string{"chaos"}, args...), "--json"))
	labtest.NoChildren(t)
	if code != 0 {
		t.Fatalf("chaos %q: exit %d: %s\n%s", args, code, errOut.String(), out.String())
	}
	doc, err := report.Validate(out.Bytes())
	if err != nil {
		t.Fatalf("chaos %q: not a valid report: %v\n%s", args, err, out.String())
	}
	return doc
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(fmt.Sprint(v), &n); err != nil {
		t.Fatalf("%v is not a number", v)
	}
	return n
}

// checkRun checks what a passing run must show: the seed in the config
// and the verdict, one schedule row per planned kill, kills that landed
// on every target the plan had, results, and nothing left over.
func checkRun(t *testing.T, doc *report.Doc, kills int, seed uint64) {
	t.Helper()
	if got := num(t, doc.Config["seed"]); got != int64(seed) {
		t.Errorf("config seed = %d, want %d", got, seed)
	}
	if len(doc.Verdict) == 0 || !strings.Contains(doc.Verdict[0], fmt.Sprintf("(seed %d)", seed)) ||
		!strings.Contains(doc.Verdict[0], "0 hangs, 0 leftovers") {
		t.Errorf("verdict %q, want the seed, 0 hangs and 0 leftovers", doc.Verdict)
	}
	sched := doc.Table("kills")
	if sched == nil || len(sched.Rows) != kills {
		t.Fatalf("kills table = %+v, want %d rows", sched, kills)
	}
	plan := Plan(seed, kills, All)
	made := map[string]int64{}
	for _, target := range []string{Pool, Queue, Shm} {
		tab := doc.Table(target)
		planned := false
		for _, it := range plan {
			planned = planned || it.Target == target
		}
		if !planned {
			continue
		}
		if tab == nil || len(tab.Rows) == 0 {
			t.Fatalf("no %s table, yet the plan has %s iterations", target, target)
		}
		var results int64
		for i := range tab.Rows {
			made[target] += num(t, tab.Rows[i]["kills"])
			results += num(t, tab.Rows[i]["results"])
			if s := tab.Rows[i]["status"]; s != "ok" {
				t.Errorf("%s iteration %v: status %v", target, tab.Rows[i]["iteration"], s)
			}
		}
		if made[target] == 0 || results == 0 {
			t.Errorf("%s: %d kills made, %d results checked; want some of each", target, made[target], results)
		}
	}
	left := doc.Table("leftovers")
	if left == nil || len(left.Rows) != 4 {
		t.Fatalf("leftovers table = %+v, want 4 rows", left)
	}
	for i := range left.Rows {
		if n := num(t, left.Rows[i]["left"]); n != 0 {
			t.Errorf("%v left over: %d", left.Rows[i]["what"], n)
		}
	}
	t.Logf("kills made %v of %d; verdict %q", made, kills, doc.Verdict)
}

// TestChaos is CI's chaos run: 100 kills from seed 1 on all targets. Every
// check of the lab (each result exactly once or lost with its dead holder,
// no hang, nothing left over) makes it exit 1 when it fails. The long
// mode, 1,000 kills, is .ci/run's with IPCPLAY_LONG=1.
func TestChaos(t *testing.T) {
	doc := chaosJSON(t, 10*time.Minute, "--kills", "100", "--seed", "1")
	checkRun(t, doc, 100, 1)
}

// schedule is the kill schedule a report shows: iteration, target,
// victim and kill point of every planned kill.
func schedule(t *testing.T, doc *report.Doc) []string {
	t.Helper()
	tab := doc.Table("kills")
	if tab == nil {
		t.Fatal("no kills table")
	}
	var s []string
	for i := range tab.Rows {
		s = append(s, fmt.Sprint(tab.Rows[i]["iteration"], tab.Rows[i]["target"], tab.Rows[i]["victim"], tab.Rows[i]["after"]))
	}
	return s
}

// TestSameSeedSameSchedule runs the lab twice with one seed: the kill
// schedules in --json must be the same; another seed gives another.
func TestSameSeedSameSchedule(t *testing.T) {
	a := schedule(t, chaosJSON(t, 2*time.Minute, "--kills", "12", "--seed", "77"))
	b := schedule(t, chaosJSON(t, 2*time.Minute, "--kills", "12", "--seed", "77"))
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("seed 77 gave two schedules:\n%s\n--- and ---\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	c := schedule(t, chaosJSON(t, 2*time.Minute, "--kills", "12", "--seed", "78"))
	if strings.Join(a, "\n") == strings.Join(c, "\n") {
		t.Errorf("seeds 77 and 78 gave the same schedule:\n%s", strings.Join(a, "\n"))
	}
}

// TestSeedFromClock: without --seed, the seed the run used is printed, in
// the text verdict and in --json.
func TestSeedFromClock(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--kills", "1", "--target", "shm")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "verdict: 1 kill over 1 iteration (") || !strings.Contains(stdout, "(seed ") {
		t.Errorf("no verdict with the seed:\n%s", stdout)
	}
	doc := chaosJSON(t, 2*time.Minute, "--kills", "1", "--target", "shm")
	if num(t, doc.Config["seed"]) <= 0 {
		t.Errorf("config seed = %v, want the clock's", doc.Config["seed"])
	}
}
