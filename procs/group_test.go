package procs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestRoleExitCode(t *testing.T) {
	for _, tc := range []struct {
		how    string
		code   int
		stderr string
	}{
		{"alone", 3, ""},
		{"wrapped", 4, roleCode + ": gave up: exit status 4\n"},
		{"alone", 0, ""},
	} {
		var stderr bytes.Buffer
		c := Command(testContext(t), roleCode, tc.how, strconv.Itoa(tc.code))
		c.Stderr = &stderr
		err := c.Run()
		var ce *ChildError
		switch {
		case tc.code == 0 && err != nil:
			t.Errorf("%s ExitCode(0): %v, want success", tc.how, err)
		case tc.code != 0 && (!errors.As(err, &ce) || ce.ExitCode != tc.code):
			t.Errorf("%s ExitCode(%d): %v, want exit status %d", tc.how, tc.code, err, tc.code)
		}
		if stderr.String() != tc.stderr {
			t.Errorf("%s ExitCode(%d): stderr %q, want %q", tc.how, tc.code, stderr.String(), tc.stderr)
		}
	}
}

func TestSetFileClosesParentCopy(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := Command(testContext(t), roleReady)
	c.SetFile(FDControl, w)
	if len(c.ExtraFiles) != 1 || c.ExtraFiles[0] != w {
		t.Fatalf("ExtraFiles = %v, want the pipe in slot %d", c.ExtraFiles, FDControl)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte{'x'}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write to the parent's copy after Start: %v, want os.ErrClosed", err)
	}
	// Only the child held the write end: its exit is our EOF.
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "r" {
		t.Errorf("read %q, %v; want the child's byte, then EOF", got, err)
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}

	// A later slot leaves the ones before it empty; a failed Start still
	// closes what was handed over.
	_, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c = Command(testContext(t), "procs-test-nobody")
	c.SetFile(FDExtra, w2)
	if len(c.ExtraFiles) != FDExtra-2 || c.ExtraFiles[0] != nil || c.ExtraFiles[FDExtra-3] != w2 {
		t.Errorf("ExtraFiles = %v", c.ExtraFiles)
	}
	if err := c.Start(); err == nil {
		t.Fatal("start of an unregistered role succeeded")
	}
	if _, err := w2.Write([]byte{'x'}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write after a failed Start: %v, want os.ErrClosed", err)
	}
}

func TestGroupFirstFailureStopsTheRest(t *testing.T) {
	ctx := testContext(t)
	stdin, keep, err := os.Pipe() // never written: roleBlock blocks until stopped
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer keep.Close()
	g, err := StartGroup(ctx, 3, func(gctx context.Context, i int) *Cmd {
		if i == 1 {
			return Command(gctx, roleExit, "5")
		}
		c := Command(gctx, roleBlock)
		c.Stdin = stdin
		return c
	})
	if err != nil {
		t.Fatal(err)
	}
	if pids := g.PIDs(); len(pids) != 3 || pids[0] == 0 {
		t.Errorf("PIDs = %v", pids)
	}
	err = g.Wait()
	var ce *ChildError
	if !errors.As(err, &ce) || ce.Index != 1 || ce.ExitCode != 5 {
		t.Fatalf("Wait = %v, want child 1's exit 5 first", err)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 3 {
		t.Errorf("Wait joined %d errors, want 3 (one own, two stopped): %v", n, err)
	}
	if cause := context.Cause(g.Context()); !errors.As(cause, &ce) || ce.Index != 1 {
		t.Errorf("group context cause = %v, want child 1's failure", cause)
	}
	assertNoChildren(t)
}

func TestGroupSuccessAndStop(t *testing.T) {
	ctx := testContext(t)
	g, err := StartGroup(ctx, 2, func(gctx context.Context, i int) *Cmd { return Command(gctx, roleExit, "0") })
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}

	g, err = StartGroup(ctx, 2, func(gctx context.Context, i int) *Cmd { return Command(gctx, roleBlock) })
	if err != nil {
		t.Fatal(err)
	}
	// roleBlock on /dev/null exits at once; Stop must still be safe.
	g.Stop()
	if !errors.Is(context.Cause(g.Context()), ErrGroupStopped) {
		t.Errorf("cause after Stop = %v", context.Cause(g.Context()))
	}
	want := errors.New("shared memory wait ended")
	if err := g.Failed(want); err != want {
		t.Errorf("Failed = %v, want the caller's error when no child failed", err)
	}

	if _, err := StartGroup(ctx, 2, func(gctx context.Context, i int) *Cmd {
		if i == 1 {
			return Command(gctx, "procs-test-nobody")
		}
		return Command(gctx, roleExit, "0")
	}); err == nil || !strings.Contains(err.Error(), "role not registered") {
		t.Errorf("StartGroup with an unregistered role: %v", err)
	}
	assertNoChildren(t)
}

func TestMeasureSpawn(t *testing.T) {
	st, err := MeasureSpawn(testContext(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	if st.N != 3 || len(st.All) != 3 || st.Min <= 0 || st.Min > st.Median || st.Median > st.Max {
		t.Errorf("MeasureSpawn = %+v", st)
	}
	if !Registered(BareRole) {
		t.Error("BareRole is not registered")
	}
	assertNoChildren(t)
}
