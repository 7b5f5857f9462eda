package pipelab

import (
	"context"
	"os"
	"testing"
	"time"

	"ipcplay/pipes"
	"ipcplay/procs"
)

func TestMain(m *testing.M) {
	RegisterRoles()
	procs.Register(cliRole, cliMain)
	procs.Init()
	os.Exit(m.Run())
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

var testCfg = Config{Timeout: 500 * time.Millisecond, Window: 200 * time.Millisecond}

func TestDeadlocks(t *testing.T) {
	for _, sc := range Scenarios() {
		t.Run(string(sc), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			fds := openFDs(t)
			run, err := Deadlock(ctx, sc, 1<<20, testCfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", run)
			if !run.Hung || !run.Deadlocked || run.Verdict != pipes.VerdictPipeFull {
				t.Fatalf("1 MiB: hung %v, deadlocked %v, verdict %q", run.Hung, run.Deadlocked, run.Verdict)
			}
			ev := run.Evidence
			if ev.State != "S" || ev.PipeBuffered < run.PipeCapacity-pipes.PipeBuf {
				t.Errorf("evidence: state %q, %d of %d bytes in the pipe", ev.State, ev.PipeBuffered, run.PipeCapacity)
			}
			if run.BlockedAfterBytes >= run.Bytes || run.BlockedAfterBytes < int64(run.PipeCapacity-pipes.PipeBuf) {
				t.Errorf("blocked after %d bytes of %d, capacity %d", run.BlockedAfterBytes, run.Bytes, run.PipeCapacity)
			}
			if !run.FixedCompleted || run.FixedBytes != run.Bytes {
				t.Errorf("fixed: completed %v, %d bytes, %s", run.FixedCompleted, run.FixedBytes, run.FixedErr)
			}
			if !run.OK() || run.ChildrenLeft != 0 {
				t.Errorf("not OK: %+v", run)
			}
			if got := openFDs(t); got != fds {
				t.Errorf("%d fds before, %d after", fds, got)
			}
		})
	}
}

func TestSmallDoesNotDeadlock(t *testing.T) {
	for _, sc := range Scenarios() {
		t.Run(string(sc), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			run, err := Deadlock(ctx, sc, 32<<10, testCfg)
			if err != nil {
				t.Fatal(err)
			}
			if run.Hung || run.Deadlocked || run.Evidence != nil {
				t.Errorf("32 KiB: hung %v, deadlocked %v, verdict %q", run.Hung, run.Deadlocked, run.Verdict)
			}
			if run.BlockedAfterBytes != run.Bytes {
				t.Errorf("child wrote %d of %d", run.BlockedAfterBytes, run.Bytes)
			}
			if !run.OK() {
				t.Errorf("not OK: %+v", run)
			}
		})
	}
}

func TestThreshold(t *testing.T) {
	// The byte Threshold names is the first that hangs: one byte fewer
	// completes, in every scenario.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	measured, _, err := pipes.MeasureCapacity(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range Scenarios() {
		th := Threshold(sc, measured, testCfg.chunk())
		for _, n := range []int64{th - 1, th} {
			run, err := Deadlock(ctx, sc, n, testCfg)
			if err != nil {
				t.Fatal(err)
			}
			if want := n >= th; run.Deadlocked != want || !run.OK() {
				t.Errorf("%s, %d bytes: deadlocked %v, want %v (%+v)", sc, n, run.Deadlocked, want, run)
			}
		}
	}
}

func TestCapacity(t *testing.T) {
	rep, err := Capacity()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Default != rep.Measured || rep.Resized != rep.ResizedMeasured || rep.Resized < rep.ResizeRequest {
		t.Errorf("%+v", rep)
	}
	if rep.OddResized < rep.OddRequest || rep.OverMaxErr == "" {
		t.Errorf("%+v", rep)
	}
}
