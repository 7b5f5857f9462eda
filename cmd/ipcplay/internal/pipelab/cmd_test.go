package pipelab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/procs"
)

// cliRole runs "ipcplay ARGS" in a child with main's signal handling, for
// the test that sends it Ctrl-C.
const cliRole = "ipcplay-test-pipes-cli"

func program() *base.Program {
	return &base.Program{Name: "ipcplay", Commands: []*base.Command{Command()}}
}

// cliMain is cliRole: the command line, cancelled with a *base.Interrupt
// cause on SIGINT or SIGTERM, as cmd/ipcplay's main does it.
func cliMain(ctx context.Context, args []string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		cancel(&base.Interrupt{Signal: s.(syscall.Signal)})
	}()
	os.Exit(program().Main(ctx, base.OSEnv(), args))
	return nil
}

// runCmd runs "ipcplay ARGS" in this process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return labtest.Run(t, program().Commands, args...)
}

// fits fails the test for lines wider than 80 columns or ending in a space.
func fits(t *testing.T, what, out string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if n := len([]rune(l)); n > base.DefaultWidth {
			t.Errorf("%s: line of %d columns: %q", what, n, l)
		}
		if strings.HasSuffix(l, " ") {
			t.Errorf("%s: trailing space: %q", what, l)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pipes", "deadlock", "--scenario", "nope"}, "--scenario nope: want all, wait-then-read, stdout-then-stderr or both-directions"},
		{[]string{"pipes", "deadlock", "--scenario", "wait-then-raed"}, `did you mean "wait-then-read"?`},
		{[]string{"pipes", "deadlock", "--bytes", "12Q"}, `size "12Q"`},
		{[]string{"pipes", "deadlock", "--bytes", "0"}, "want each size from 1B to 1GiB"},
		{[]string{"pipes", "deadlock", "--bytes", "2G"}, "want each size from 1B to 1GiB"},
		{[]string{"pipes", "deadlock", "--bytes", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"}, "17 sizes; want at most 16"},
		{[]string{"pipes", "deadlock", "--timeout", "1ns"}, "--timeout 1ns: want a duration from 10ms to 1m0s"},
		{[]string{"pipes", "deadlock", "--timeout", "1"}, "want a duration with a unit, such as 1s"},
		{[]string{"pipes", "deadlock", "--timeout", "2h"}, "want a duration from 10ms to 1m0s"},
		{[]string{"pipes", "deadlock", "extra"}, `unexpected argument "extra"`},
		{[]string{"pipes", "capacity", "extra"}, `unexpected argument "extra"`},
		{[]string{"pipes", "bench", "--rounds", "0"}, "--rounds 0: want a whole number from 1 to 1,000,000"},
		{[]string{"pipes", "bench", "--rounds", "10000000"}, "--rounds 10000000: want a whole number from 1 to 1,000,000"},
		{[]string{"pipes", "bench", "--bytes", "0"}, "--bytes 0: want a size from 1MiB to 1GiB"},
		{[]string{"pipes", "bench", "--bytes", "1M,2M"}, `size "1M,2M"`},
		{[]string{"pipes", "bench", "--write", "100"}, "want each size from 1KiB to 4MiB"},
		{[]string{"pipes", "bench", "--write", "1K,2K,3K,4K,5K,6K,7K,8K,9K"}, "9 sizes; want at most 8"},
		{[]string{"pipes", "bench", "--frobnicate"}, "unknown flag --frobnicate"},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		path := strings.Join(tc.args[:2], " ")
		if code != 2 || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q; want 2 and nothing", tc.args, code, stdout)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "ipcplay "+path+": ") ||
			!strings.HasSuffix(stderr, "(see 'ipcplay "+path+" -h')\n") || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: stderr %q, want one line naming %q", tc.args, stderr, tc.want)
		}
	}
	for _, args := range [][]string{{"pipes"}, {"pipes", "frobnicate"}} {
		if code, _, stderr := runCmd(t, args...); code != 2 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line", args, code, stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"pipes", "-h"}, {"help", "pipes"},
		{"pipes", "deadlock", "-h"}, {"help", "pipes", "deadlock"}, {"pipes", "deadlock", "help"},
		{"pipes", "capacity", "--help"}, {"pipes", "bench", "-h"},
	} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage: ipcplay pipes") ||
			!strings.Contains(stdout, "Examples:\n  ipcplay pipes") || !strings.HasSuffix(stdout, "\n") {
			t.Errorf("%q: exit %d, stderr %q, stdout %q", args, code, stderr, stdout)
		}
		fits(t, strings.Join(args, " "), stdout)
	}
	_, stdout, _ := runCmd(t, "pipes", "bench", "-h")
	for _, want := range []string{"--rounds N", "1..1,000,000", "--bytes SIZE", "--write SIZES"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("pipes bench -h lacks %q:\n%s", want, stdout)
		}
	}
}

func TestDeadlockJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, "pipes", "deadlock", "--scenario", "wait-then-read",
		"--bytes", "32K,1.5M", "--timeout", "300ms", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v\n%s", err, stdout)
	}
	capacity, err := doc.Config["pipe_capacity"].(json.Number).Int64()
	if err != nil || capacity <= 0 {
		t.Fatalf("pipe_capacity = %v", doc.Config["pipe_capacity"])
	}
	runs, ev := doc.Table("runs"), doc.Table("evidence")
	if runs == nil || ev == nil || len(runs.Rows) != 2 || len(ev.Rows) != 2 {
		t.Fatalf("tables runs and evidence, 2 rows each: %s", stdout)
	}
	if n, _ := runs.Int(1, "bytes"); n != 1536<<10 {
		t.Errorf("second run of %d bytes, want 1.5MiB", n)
	}
	if ev.Bool(0, "deadlocked") || ev.Bool(0, "hung") || runs.String(0, "broken") != "completed" {
		t.Errorf("32K: %v %v", runs.Rows[0], ev.Rows[0])
	}
	if !ev.Bool(1, "deadlocked") || ev.String(1, "state") != "S" || runs.String(1, "broken") != "deadlocked" ||
		ev.String(1, "full_pipe") != "stdout" {
		t.Errorf("1.5M: %v %v", runs.Rows[1], ev.Rows[1])
	}
	if wrote, _ := ev.Int(1, "child_wrote"); wrote != capacity {
		t.Errorf("child wrote %d bytes before it blocked, want the capacity %d", wrote, capacity)
	}
	for i := range 2 {
		if !runs.Bool(i, "ok") || !ev.Bool(i, "fixed_completed") {
			t.Errorf("run %d: ok %v, fixed %v", i, runs.Bool(i, "ok"), ev.Bool(i, "fixed_completed"))
		}
	}
	// The threshold is capacity + 1, said as such: not "from 1.5MiB".
	want := "wait-then-read deadlocks from " + base.Count(capacity+1) + " bytes (capacity + 1)"
	if len(doc.Verdict) != 2 || !strings.HasPrefix(doc.Verdict[1], want) ||
		!strings.HasSuffix(doc.Verdict[1], "here 32KiB completed; 1536KiB deadlocked") {
		t.Errorf("verdict %q, want a second line starting %q", doc.Verdict, want)
	}
}

// TestDeadlockText runs the lab sheet's command and checks the output fits
// 80 columns (cmd/ipcplay's TestLabSheets keeps the sheet's excerpt true).
func TestDeadlockText(t *testing.T) {
	code, stdout, stderr := runCmd(t, "pipes", "deadlock", "--bytes", "32K,1M", "--timeout", "500ms")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	fits(t, "pipes deadlock", stdout)
	if !strings.Contains(stdout, "both-directions, 1MiB: the parent was stuck too") {
		t.Errorf("no note on the parent stuck in both-directions:\n%s", stdout)
	}
}

func TestBenchCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, "pipes", "bench", "--rounds", "300", "--bytes", "2M", "--write", "16K,64K", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	pp, tp, by := doc.Table("pingpong"), doc.Table("throughput"), doc.Table("throughput_by_write")
	if pp == nil || tp == nil || by == nil || len(pp.Rows) != 3 || len(tp.Rows) != 18 || len(by.Rows) != 9 {
		t.Fatalf("want 3 ping-pong rows, 18 throughput rows and 9 configurations:\n%s", stdout)
	}
	seen := map[string]bool{}
	for i := range pp.Rows {
		seen["pingpong/"+pp.String(i, "mode")+"/"+pp.String(i, "path")] = true
		med, ok1 := pp.Int(i, "median_ns")
		p99, ok2 := pp.Int(i, "p99_ns")
		if !ok1 || !ok2 || med <= 0 || p99 < med {
			t.Errorf("ping-pong row %v", pp.Rows[i])
		}
	}
	for i := range tp.Rows {
		seen["throughput/"+tp.String(i, "mode")+"/"+tp.String(i, "path")] = true
		if tp.String(i, "skipped") != "" {
			continue
		}
		if n, _ := tp.Int(i, "bytes"); n != 2<<20 {
			t.Errorf("throughput row %v: bytes %d", tp.Rows[i], n)
		}
		if g, ok := tp.Float(i, "gbps"); !ok || g <= 0 {
			t.Errorf("throughput row %v", tp.Rows[i])
		}
	}
	for _, want := range []string{"pingpong/procs/raw", "pingpong/procs/file", "pingpong/goroutines/chan",
		"throughput/procs/raw", "throughput/procs/file", "throughput/goroutines/io.Pipe", "throughput/goroutines/chan"} {
		if !seen[want] {
			t.Errorf("no %s run", want)
		}
	}
	if len(doc.Plots) != 1 || len(doc.Plots[0].Lines) < 6 || !doc.Plots[0].X.Log || !doc.Plots[0].Y.Log {
		t.Errorf("plots %+v, want one log-log plot of throughput against write size", doc.Plots)
	}
	for _, l := range doc.Plots[0].Lines {
		if l.Dashed != strings.HasPrefix(l.Label, "goroutines") || len(l.Points) != 2 {
			t.Errorf("line %q: dashed %v, %d points", l.Label, l.Dashed, len(l.Points))
		}
	}
	if len(doc.Verdict) != 4 || !strings.HasPrefix(doc.Verdict[3], "where a round trip's time goes: ") {
		t.Errorf("verdict %q, want ping-pong, throughput, write size and the cost", doc.Verdict)
	}
	if c := doc.Table("cost"); c == nil || len(c.Rows) != 3 {
		t.Errorf("cost table %+v, want raw, file and goroutines", c)
	}

	code, stdout, stderr = runCmd(t, "pipes", "bench", "--rounds", "300", "--bytes", "2M", "--write", "64K")
	if code != 0 || !strings.Contains(stdout, "verdict: a pipe round trip") {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	fits(t, "pipes bench", stdout)
}

func TestDeadlockInterrupted(t *testing.T) {
	// A deadlocked child and a watchdog that would wait a minute: Ctrl-C
	// must end both, exit 130 and say so.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := procs.Command(ctx, cliRole, "pipes", "deadlock", "--scenario", "wait-then-read", "--timeout", "1m")
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	defer func() {
		if !waited {
			c.Process().Kill()
			c.Wait()
		}
	}()
	// The lab's child shows up in /proc once it has been started.
	var kids []int
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for len(kids) == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the deadlock child never started")
		case <-tick.C:
		}
		var err error
		if kids, err = procs.Children(c.Pid()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Process().Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := c.Wait()
	waited = true
	ce, ok := errors.AsType[*procs.ChildError](err)
	if !ok || ce.ExitCode != 130 {
		t.Fatalf("after SIGINT: %v, want exit status 130", err)
	}
	if !strings.Contains(stderr.String(), "interrupted (Ctrl-C, SIGINT)") {
		t.Errorf("stderr %q does not say it was interrupted", stderr.String())
	}
	for _, pid := range kids {
		// Pdeathsig and the lab's own kill both end the child; it is
		// gone, or a zombie of a parent that is gone, once /proc says so.
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !isZombie(b) {
			t.Errorf("child %d still running after the cli exited: %s", pid, b)
		}
	}
}

func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}
