package benchlab

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/report"
)

// TestCSourcesMatchTestdata keeps the embedded C references equal to the
// ones in the repository's testdata, which other labs and the sheets use.
func TestCSourcesMatchTestdata(t *testing.T) {
	for _, name := range []string{"pipes-pingpong.c", "shm-spin-pingpong.c"} {
		want, err := os.ReadFile("../../../../testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := csrc.ReadFile("csrc/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("csrc/%s differs from testdata/%s: copy it again (cp testdata/%s cmd/ipcplay/internal/benchlab/csrc/)", name, name, name)
		}
	}
}

// TestCReferences checks that a run with pipe and shm-spin builds and runs
// both C references and reports a ratio for each, or says why not.
func TestCReferences(t *testing.T) {
	code, stdout, stderr := runCmd(t, "bench", "--mech", "pipe,shm-spin", "--size", "64", "--seconds", "10ms", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v", err)
	}
	if cc, why := cCompiler(); cc == "" {
		if !strings.Contains(strings.Join(doc.Notes, "\n"), why) {
			t.Errorf("no C compiler, yet no note saying so: %q", doc.Notes)
		}
		t.Skip(why)
	}
	// Each reference has a row with a ratio, or a note saying why it was
	// skipped: a loaded machine can stop the spinning one at its time
	// limit, which is the lab working, not failing.
	rt := doc.Table("c_reference")
	rows := map[string]int{}
	if rt != nil {
		for i := range rt.Rows {
			rows[rt.String(i, "mech")] = i
		}
	}
	notes := strings.Join(doc.Notes, "\n")
	for _, name := range []string{"c-pipe", "c-shm-spin"} {
		i, ok := rows[name]
		if !ok {
			if !strings.Contains(notes, name+" skipped: ") {
				t.Errorf("%s: no row in c_reference and no note saying why; notes %q", name, doc.Notes)
			}
			continue
		}
		if x, ok := rt.Float(i, "ratio"); !ok || x <= 0 {
			t.Errorf("c_reference %s: ratio %v, want a positive number", name, rt.Rows[i]["ratio"])
		}
	}
	if _, ok := rows["c-pipe"]; !ok {
		return // the throughput turns ran with the pipe's, and were skipped with them
	}
	thr := doc.Table("c_pipe_throughput")
	if thr == nil || len(thr.Rows) != cRefReps {
		t.Fatalf("c_pipe_throughput: want %d turns, got %v", cRefReps, thr)
	}
	for i := range thr.Rows {
		if x, ok := thr.Float(i, "ratio"); !ok || x <= 0 {
			t.Errorf("c_pipe_throughput turn %d: ratio %v, want a positive number", i+1, thr.Rows[i]["ratio"])
		}
	}
}

// TestRunCLeavesNoChild stops the spinning C reference at a time limit it
// cannot meet and checks that its forked child, which would spin for ever
// waiting for the next ping, is gone too.
func TestRunCLeavesNoChild(t *testing.T) {
	cc, why := cCompiler()
	if cc == "" {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	bin, err := buildC(ctx, cc, t.TempDir(), "shm-spin-pingpong")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runC(ctx, 20*time.Millisecond, cSpinRTT, 1, bin, "100000000"); err == nil {
		t.Fatalf("runC of 10^8 spin rounds within 20ms: no error, want its time limit")
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.HasPrefix(b, []byte(bin+"\x00")) {
			t.Errorf("%s is still running (%s)", bin, p)
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL) // leave no spinner behind
			}
		}
	}
}
