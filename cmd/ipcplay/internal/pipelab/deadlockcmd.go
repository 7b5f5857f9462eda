package pipelab

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/pipes"
)

// Bounds of the deadlock command's flags: large enough for any lesson,
// small enough that no setting can run for hours or fill the memory.
const (
	maxDeadlockBytes = 1 << 30
	maxSizes         = 16
	maxTimeout       = time.Minute
)

func deadlockCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "deadlock [flags]",
		Short:     "make the classic pipe-buffer deadlocks happen, prove them from /proc, then run the fix",
		Long: `Runs each scenario for real: a child writes N bytes and this process, its parent, does the wrong thing.

  wait-then-read       the parent waits for the child before reading its
                       stdout
  stdout-then-stderr   the parent reads stdout to EOF while the child fills
                       stderr
  both-directions      the parent writes N bytes to the child's stdin
                       without reading the child's stdout, while the child
                       echoes them

A watchdog fires after --timeout without progress (the child publishes the bytes it wrote in shared memory), reads /proc/PID/task/*/{stat,wchan,syscall} and how full the pipe is (FIONREAD), and calls it a deadlock only if the child sleeps in a write to a full pipe; a child that is merely slow gets more time, up to three looks. Then it kills the child and runs the fixed code: a drain goroutine on every output pipe, and a writer goroutine for stdin.

Sweep sizes around the pipe's capacity to find the threshold. Exits 0 when every outcome matches its evidence and every fixed run completed.

Examples:
  ipcplay pipes deadlock --bytes 32K,64K,65K,1M
  ipcplay pipes deadlock --scenario both-directions --bytes 132K,133K
  ipcplay pipes deadlock --scenario wait-then-read --bytes 1.5M --json`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	choices := []string{"all"}
	for _, sc := range Scenarios() {
		choices = append(choices, string(sc))
	}
	scenario := base.ChoiceFlag(f, "scenario", "all", choices, "the scenario to run")
	sizes := base.SizesFlag(f, "bytes", []int64{32 << 10, 1 << 20}, 1, maxDeadlockBytes,
		"bytes the child writes; several sweep the sizes")
	timeout := base.DurationFlag(f, "timeout", DefaultTimeout, 10*time.Millisecond, maxTimeout,
		"how long without progress before the watchdog looks for a deadlock")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if len(*sizes) > maxSizes {
			return base.Usagef("--bytes: %d sizes; want at most %d", len(*sizes), maxSizes)
		}
		scs := Scenarios()
		if *scenario != "all" {
			scs = []Scenario{Scenario(*scenario)}
		}
		return runDeadlock(ctx, env, out, scs, *sizes, Config{Timeout: *timeout})
	}
	return cmd
}

func runDeadlock(ctx context.Context, env *base.Env, out *base.Output, scs []Scenario, sizes []int64, cfg Config) error {
	capacity, _, err := pipes.MeasureCapacity(0)
	if err != nil {
		return err
	}
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	l := &deadlockLab{capacity: capacity, cfg: cfg, scenarios: scs, sizes: sizes}
	total := float64(len(scs) * len(sizes))
	for _, sc := range scs {
		for _, n := range sizes {
			prog.Set(float64(len(l.runs)), total, "pipes deadlock: %s, %s", sc, base.FormatSize(n))
			run, err := Deadlock(ctx, sc, n, cfg)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", sc, base.FormatSize(n), err)
			}
			l.runs = append(l.runs, run)
		}
	}
	prog.Done()
	if err := report.Write(env, out, l.report()); err != nil {
		return err
	}
	if bad := l.failures(); bad > 0 {
		return fmt.Errorf("%d of %d runs did not match their evidence or their fix did not complete", bad, len(l.runs))
	}
	return nil
}

type deadlockLab struct {
	capacity  int
	cfg       Config
	scenarios []Scenario
	sizes     []int64
	runs      []Run
}

func (l *deadlockLab) failures() int {
	n := 0
	for _, run := range l.runs {
		if !run.OK() {
			n++
		}
	}
	return n
}

func (l *deadlockLab) report() *report.Report {
	r := report.New("pipes deadlock", fmt.Sprintf(
		"pipes deadlock: %s (%s-byte) pipes, watchdog after %v without progress",
		base.FormatSize(int64(l.capacity)), base.Count(int64(l.capacity)), l.cfg.timeout()))
	r.Config["pipe_capacity"] = l.capacity
	r.Config["timeout_ns"] = int64(l.cfg.timeout())
	r.Config["scenarios"] = l.scenarios
	r.Config["sizes"] = l.sizes
	r.Config["child_write_size"] = l.cfg.chunk()

	t := r.Table("runs", "the broken code, then the fixed code",
		report.Col("scenario", "scenario", report.Text),
		report.Col("bytes", "bytes", report.Bytes),
		report.Col("broken", "broken", report.Text),
		report.Opt("child_stuck_in", "child stuck in", report.Text, 2),
		report.Opt("pipe_fill", "pipe fill", report.Bytes, 3),
		report.Opt("killed_after_ns", "killed after", report.Millis, 4),
		report.Col("fixed_ns", "fixed", report.Millis),
		report.Col("ok", "ok", report.Bool),
	)
	ev := r.Table("evidence", "the evidence from /proc, and the other pipe",
		report.Col("scenario", "scenario", report.Text),
		report.Col("bytes", "bytes", report.Bytes),
		report.Col("hung", "hung", report.Bool),
		report.Col("deadlocked", "deadlocked", report.Bool),
		report.Col("stall_verdict", "stall detector", report.Text),
		report.Col("full_pipe", "full pipe", report.Text),
		report.Col("child_wrote", "child wrote", report.Bytes),
		report.Col("pipe_fill", "pipe fill", report.Bytes),
		report.Col("pipe_capacity", "pipe capacity", report.Bytes),
		report.Col("state", "state", report.Text),
		report.Col("wchan", "wchan", report.Text),
		report.Col("syscall", "syscall", report.Text),
		report.Col("parent_wrote_to_stdin", "parent wrote to stdin", report.Bytes),
		report.Col("stdin_pipe_fill", "stdin pipe fill", report.Bytes),
		report.Col("fixed_completed", "fixed completed", report.Bool),
		report.Col("fixed_bytes", "fixed got", report.Bytes),
		report.Col("fixed_error", "fixed error", report.Text),
		report.Col("children_left", "children left", report.Int),
	)
	ev.Detail = true
	for _, run := range l.runs {
		broken, blockedIn, killed := "completed", any(nil), any(nil)
		var fill, evCap, state, wchan, sc, verdict any
		if run.Hung {
			broken, killed = "hung", run.BrokenElapsed
			if run.Deadlocked {
				broken = "deadlocked"
			}
		}
		if e := run.Evidence; e != nil {
			fill, evCap, state, wchan, verdict = e.PipeBuffered, e.PipeCapacity, e.State, e.Wchan, run.Verdict
			sc = syscallText(e)
			if run.Deadlocked {
				blockedIn = "write to " + FullPipe(run.Scenario)
			} else {
				blockedIn = "unproven: " + run.Verdict
			}
		}
		fixed := any(run.FixedElapsed)
		if !run.FixedCompleted {
			fixed = nil
		}
		t.Row(string(run.Scenario), run.Bytes, broken, blockedIn, fill, killed, fixed, run.OK())
		var parentWrote, stdinFill, fixedErr any
		if run.Scenario == BothDirections {
			parentWrote = run.ParentWritten
			if run.Hung {
				stdinFill = run.StdinBuffered
			}
		}
		if run.FixedErr != "" {
			fixedErr = run.FixedErr
		}
		ev.Row(string(run.Scenario), run.Bytes, run.Hung, run.Deadlocked, verdict, FullPipe(run.Scenario),
			run.BlockedAfterBytes, fill, evCap, state, wchan, sc, parentWrote, stdinFill,
			run.FixedCompleted, run.FixedBytes, fixedErr, run.ChildrenLeft)
	}
	t.Notef("PIPE FILL is what sat in that full pipe when the watchdog looked; FIXED is how long the fixed code took. --wide shows the evidence from /proc.")
	for _, run := range l.runs {
		if run.Scenario == BothDirections && run.Hung {
			r.Notef("both-directions, %s: the parent was stuck too, in a write to the child's stdin pipe: it had written %s bytes, %s of them still in that pipe, while the child sat in a write to its full stdout pipe",
				base.FormatSize(run.Bytes), base.Count(run.ParentWritten), base.Count(int64(run.StdinBuffered)))
		}
	}
	l.verdict(r)
	return r
}

// sorted returns the runs of sc by size.
func (l *deadlockLab) sorted(sc Scenario) []Run {
	var runs []Run
	for _, run := range l.runs {
		if run.Scenario == sc {
			runs = append(runs, run)
		}
	}
	slices.SortStableFunc(runs, func(a, b Run) int { return cmp.Compare(a.Bytes, b.Bytes) })
	return runs
}

func syscallText(e *pipes.Evidence) string {
	switch {
	case e.SyscallErr != "":
		return "unreadable (" + e.SyscallErr + ")"
	case e.SyscallNr >= 0:
		return fmt.Sprintf("%s (%d)", pipes.SyscallName(e.SyscallNr), e.SyscallNr)
	}
	return "none"
}

// verdict says what the runs mean: whether they match the evidence, and
// for each scenario the threshold the pipe's capacity predicts against the
// sizes that completed and deadlocked.
func (l *deadlockLab) verdict(r *report.Report) {
	if bad := l.failures(); bad > 0 {
		r.Verdictf("%d of %d runs did NOT match their evidence, or their fix failed: see the OK column and --wide", bad, len(l.runs))
	} else {
		r.Verdictf("every outcome matches the kernel's evidence and every fix completed")
	}
	for _, sc := range l.scenarios {
		th := Threshold(sc, l.capacity, l.cfg.chunk())
		var done, deadlocked, hung, wrong []string
		for _, run := range l.sorted(sc) {
			s := base.FormatSize(run.Bytes)
			switch {
			case run.Deadlocked:
				deadlocked = append(deadlocked, s)
			case run.Hung:
				hung = append(hung, s)
			default:
				done = append(done, s)
			}
			if run.Hung != (run.Bytes >= th) {
				wrong = append(wrong, s)
			}
		}
		var why string
		switch sc {
		case WaitThenRead:
			why = fmt.Sprintf("capacity + 1) on: the child's write of the first byte the %s pipe cannot hold waits for a reader, and the parent reads only once the child has exited", base.FormatSize(int64(l.capacity)))
		case StdoutThenStderr:
			why = "capacity + 1) on: the child's stderr fills while the parent waits for EOF on stdout, which comes only when the child exits"
		default:
			why = fmt.Sprintf("2 x capacity + the %s the child holds + 1) on: the child's stdout fills, it stops reading, then its stdin fills under the parent", base.FormatSize(int64(l.cfg.chunk())))
		}
		var stuck []string
		if len(deadlocked) > 0 {
			stuck = append(stuck, andList(deadlocked)+" deadlocked")
		}
		if len(hung) > 0 {
			stuck = append(stuck, andList(hung)+" hung without proof")
		}
		r.Verdictf("%s deadlocks from %s bytes (%s; %s", sc, base.Count(th), why, joinSeen(done, stuck))
		if len(wrong) > 0 {
			r.Warnf("%s: %s went against that threshold; a loaded machine can make a slow child look stuck (raise --timeout), or the pipe was resized", sc, strings.Join(wrong, ", "))
		}
	}
}

// joinSeen says what the runs of a scenario did: "here 32KiB completed;
// 1MiB deadlocked".
func joinSeen(done, stuck []string) string {
	var parts []string
	if len(done) > 0 {
		parts = append(parts, andList(done)+" completed")
	}
	parts = append(parts, stuck...)
	return "here " + strings.Join(parts, "; ")
}

// andList joins "a", "b", "c" as "a, b and c".
func andList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
