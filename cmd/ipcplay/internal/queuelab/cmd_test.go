package queuelab

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/cmd/ipcplay/internal/report"
)

// runCmd runs "ipcplay queue ARGS" in this process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return labtest.Run(t, []*base.Command{Command()}, append([]string{"queue"}, args...)...)
}

func TestCmdUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--producers", "0"}, "--producers 0: want a whole number from 1 to 64"},
		{[]string{"--capacity", "0"}, "--capacity 0"},
		{[]string{"--window", "100000000"}, "--window 100000000: want a whole number from 1 to 1,048,576"},
		{[]string{"--mode", "processes"}, `want procs, goroutines or both`},
		{[]string{"--lab", "nope"}, `--lab nope: want throughput, poison-pill or join-deadlock`},
		{[]string{"--lab", "poison-pil"}, `did you mean "poison-pill"?`},
		{[]string{"--watchdog", "1"}, `--watchdog 1: want a duration with a unit`},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--kill", "1001"}, "--kill 1001: want a whole number from 0 to 1,000"},
		{[]string{"--lab", "poison-pill", "--kill", "2"}, "--kill goes with --lab throughput, not poison-pill"},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestCmdJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--messages", "4000", "--capacity", "32", "--window", "8", "--pings", "20", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	runs := doc.Table("runs")
	// procs on lanes and relayed, goroutines, the bare channel, four raw
	// socket rows and Python's, unless python3 is missing.
	if runs == nil || len(runs.Rows) < 8 || runs.String(0, "mode") != "procs" || runs.String(1, "what") != "ipc.Queue 1->1 relayed" ||
		runs.String(2, "mode") != "goroutines" || runs.String(3, "mode") != "channel" || runs.String(4, "mode") != "socket" {
		t.Fatalf("runs: %+v", runs)
	}
	for i := range 3 {
		received, _ := runs.Int(i, "messages")
		p50, _ := runs.Int(i, "latency_p50_ns")
		p99, _ := runs.Int(i, "latency_p99_ns")
		rate, _ := runs.Float(i, "msgs_per_sec")
		if !runs.Bool(i, "exactly_once") || received != 4000 || p50 <= 0 || p99 < p50 || rate <= 0 {
			t.Errorf("run %v", runs.Rows[i])
		}
	}
	if len(doc.Verdict) != 3 || !strings.Contains(doc.Verdict[0], "exactly once") ||
		!strings.HasPrefix(doc.Verdict[1], "where the time goes, procs: ") || !strings.HasPrefix(doc.Verdict[2], "where the time goes, goroutines: ") {
		t.Errorf("verdict = %q, want the rates, then the dominant cost of procs and goroutines", doc.Verdict)
	}
	ct := doc.Table("cost")
	if ct == nil || len(ct.Rows) != 2 || ct.String(0, "run") != "procs" || ct.String(1, "run") != "goroutines" {
		t.Fatalf("cost: %+v", ct)
	}
	if rt := doc.Table("round_trip"); rt == nil || len(rt.Rows) != 2 {
		t.Fatalf("round_trip: %+v", rt)
	}
}

func TestCmdPoisonPill(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--lab", "poison-pill", "--producers", "2", "--consumers", "2", "--messages", "2000", "--watchdog", "1s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"poison-pill-short", "verdict: Close and 2 pills", "left 1 consumer"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCmdJoinDeadlockJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--lab", "join-deadlock", "--capacity", "16", "--watchdog", "300ms", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	join, fix := doc.Table("join_first"), doc.Table("read_while_waiting")
	if len(join.Rows) != 2 || len(fix.Rows) != 2 {
		t.Fatalf("rows: %v %v", join.Rows, fix.Rows)
	}
	for i := range join.Rows {
		msgs, _ := join.Int(i, "messages")
		got, _ := fix.Int(i, "received")
		code, _ := fix.Int(i, "exit_code")
		if !join.Bool(i, "deadlocked") || fix.String(i, "ended_by") != "killed" || got != msgs || code != 0 {
			t.Errorf("run %d: %v / %v", i, join.Rows[i], fix.Rows[i])
		}
	}
}

func TestCmdRecovery(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--messages", "4000", "--repeat", "1", "--pings", "0", "--mode", "procs", "--kill", "3", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	if runs := doc.Table("runs"); runs == nil || !runs.Bool(0, "exactly_once") {
		t.Errorf("runs = %+v, want the queue's run exactly once", runs)
	}
	rec, kills := doc.Table("recovery"), doc.Table("recovery_kills")
	if rec == nil || len(rec.Rows) != 2 || kills == nil || len(kills.Rows) != 6 {
		t.Fatalf("recovery = %+v, kills = %+v; want a consumer and a producer killed 3 times each", rec, kills)
	}
	for i, want := range []string{"consumer", "producer"} {
		n, _ := rec.Int(i, "kills")
		med, _ := rec.Int(i, "median_ns")
		hi, _ := rec.Int(i, "max_ns")
		lost, _ := rec.Int(i, "lost")
		if rec.String(i, "killed") != want || n != 3 || med > hi {
			t.Errorf("row %d: %s n=%d median %d max %d; want %s, 3 kills, median <= max", i, rec.String(i, "killed"), n, med, hi, want)
		}
		if want == "consumer" && lost != 3*16 {
			t.Errorf("consumer: %d values lost, want the 3 x 16 it held", lost)
		}
		if want == "producer" && (lost < 0 || lost > 3*16) {
			t.Errorf("producer: %d puts lost, want 0 to 3 x 16", lost)
		}
	}
	v := strings.Join(doc.Verdict, "\n")
	if !strings.Contains(v, "a dead consumer is dropped by the hub and a Join goes on in a median") ||
		!strings.Contains(v, "every value the hub had taken delivered exactly once") {
		t.Errorf("verdict %q says nothing of the recovery", v)
	}
}

func TestCmdShmJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, "--transport", "shm", "--producers", "2", "--messages", "4000", "--capacity", "32",
		"--pings", "20", "--repeat", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	runs := doc.Table("runs")
	if runs == nil || len(runs.Rows) != 4 {
		t.Fatalf("runs: %+v, want the ring, the bare ring, the bare channel and the socket queue", runs)
	}
	for i, want := range []string{"procs", "shm", "channel", "socket"} {
		if got := runs.String(i, "mode"); got != want {
			t.Errorf("runs row %d mode = %q, want %q", i, got, want)
		}
	}
	if w := runs.String(0, "what"); !strings.Contains(w, "mpmc 2->1") {
		t.Errorf("ring row = %q, want an mpmc ring 2->1", w)
	}
	for _, i := range []int{0, 3} {
		received, _ := runs.Int(i, "messages")
		if !runs.Bool(i, "exactly_once") || received != 4000 {
			t.Errorf("run %v: want 4000 messages exactly once", runs.Rows[i])
		}
	}
	if rt := doc.Table("round_trip"); rt == nil || len(rt.Rows) != 4 {
		t.Fatalf("round_trip: %+v", rt)
	}
	ct := doc.Table("cost")
	if ct == nil || len(ct.Rows) != 2 || ct.String(0, "run") != "shm ring" || ct.String(1, "run") != "ipc.Queue" {
		t.Fatalf("cost: %+v", ct)
	}
	if len(doc.Verdict) != 3 || !strings.Contains(doc.Verdict[0], "the bare ring") || !strings.Contains(doc.Verdict[0], "a bare channel") {
		t.Errorf("verdict = %q, want the ratios to the bare ring and the channel, then two costs", doc.Verdict)
	}
}

// TestPillInterrupted: an interrupt while the one-pill-short consumer
// waits for its watchdog stops the lab with the interrupt, not with a
// verdict saying the watchdog ended it (the consumer is stopped by the
// interrupt, which the lab once counted as the watchdog's doing).
func TestPillInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	// Interrupt once the phase has started: a minute-long watchdog cannot
	// have fired by then.
	stop := time.AfterFunc(2*time.Second, func() { cancel(&base.Interrupt{Signal: syscall.SIGINT}) })
	defer stop.Stop()
	dl, dcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer dcancel()
	var out, errOut bytes.Buffer
	cfg := Config{Producers: 1, Consumers: 2, Messages: 100, Size: 64, Capacity: 16, Window: 4, Watchdog: time.Minute}
	err := runQueue(dl, base.TestEnv(&out, &errOut), &base.Output{}, cfg, []Mode{Procs}, []Shutdown{ShutdownPoisonPillShort})
	labtest.NoChildren(t)
	var in *base.Interrupt
	if !errors.As(err, &in) {
		t.Fatalf("runQueue = %v, want the interrupt", err)
	}
	if strings.Contains(out.String(), "watchdog ended") {
		t.Errorf("an interrupted run printed a watchdog verdict:\n%s", out.String())
	}
}
