package pipelab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"ipcplay/pipes"
	"ipcplay/procs"
	"ipcplay/shm"
)

// A Scenario is one of the lab's deadlocks.
type Scenario string

const (
	WaitThenRead     Scenario = "wait-then-read"
	StdoutThenStderr Scenario = "stdout-then-stderr"
	BothDirections   Scenario = "both-directions"
)

// Scenarios lists every scenario in the order the lab runs them.
func Scenarios() []Scenario { return []Scenario{WaitThenRead, StdoutThenStderr, BothDirections} }

// ParseScenario returns the scenario called name.
func ParseScenario(name string) (Scenario, error) {
	for _, s := range Scenarios() {
		if string(s) == name {
			return s, nil
		}
	}
	return "", fmt.Errorf("unknown scenario %q", name)
}

// DefaultTimeout is how long the watchdog lets a run go without progress
// before it looks for a deadlock.
const DefaultTimeout = 2 * time.Second

// Config tunes a run.
type Config struct {
	// Timeout is how long the watchdog waits without progress (by the
	// child or the parent) before it collects evidence and kills the
	// child. Zero means DefaultTimeout.
	Timeout time.Duration
	// Window is how long the stall detector watches once the watchdog has
	// fired; zero means 250ms.
	Window time.Duration
	// Chunk is the child's write size; zero means 4096.
	Chunk int
}

func (c Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c Config) window() time.Duration {
	if c.Window > 0 {
		return c.Window
	}
	return 250 * time.Millisecond
}

func (c Config) chunk() int {
	if c.Chunk > 0 {
		return c.Chunk
	}
	return 4096
}

// Run is the outcome of one scenario at one size: the broken code, the
// evidence about it, and the fixed code.
type Run struct {
	Scenario Scenario
	Bytes    int64
	// PipeCapacity is the capacity of the pipes the run used.
	PipeCapacity int
	// Hung is true when the broken code had not finished when the
	// watchdog gave up on it: at once if the stall detector proved a
	// deadlock, else after maxLooks inconclusive looks.
	Hung bool
	// Deadlocked is true when the stall detector's evidence showed the
	// child blocked writing to a full pipe.
	Deadlocked bool
	// Verdict is the stall detector's conclusion, "" if it never ran.
	Verdict string
	// Evidence is what the stall detector read, when it ran.
	Evidence *pipes.Evidence
	// BlockedAfterBytes is what the child had written when it was killed
	// (or all of it when it was not).
	BlockedAfterBytes int64
	// ParentWritten is what the parent had written to the child's stdin
	// (both-directions only), and StdinBuffered what sat in that pipe.
	ParentWritten int64
	StdinBuffered int
	// BrokenElapsed is how long the broken code ran, watchdog included.
	BrokenElapsed time.Duration
	// FixedCompleted says the fixed code finished and got every byte;
	// FixedElapsed is how long it took, FixedBytes what it received, and
	// FixedErr why it failed.
	FixedCompleted bool
	FixedElapsed   time.Duration
	FixedBytes     int64
	FixedErr       string
	// ChildrenLeft counts the processes still ours after the run.
	ChildrenLeft int
}

// OK reports whether the run's outcome is what the evidence says: the
// broken code hung exactly when the detector proved a full-pipe deadlock,
// the fixed code completed, and nothing was left running.
func (r Run) OK() bool {
	return r.Hung == r.Deadlocked && r.FixedCompleted && r.ChildrenLeft == 0
}

// child is one started child with its pipes. Every end the parent holds is
// closed by close.
type child struct {
	cmd    *procs.Cmd
	cancel context.CancelFunc
	region *shm.Region
	prog   *shm.Int64Array
	stdin  *os.File // parent's write end, both-directions only
	stdout *os.File // parent's read end
	stderr *os.File // parent's read end, stdout-then-stderr only
	waited bool
}

func startChild(ctx context.Context, sc Scenario, n int64, cfg Config) (_ *child, err error) {
	ctx, cancel := context.WithCancel(ctx)
	c := &child{cancel: cancel}
	var childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
		if err != nil {
			c.close()
		}
	}()
	if c.region, err = shm.New("pipes-progress", regionSize); err != nil {
		return nil, err
	}
	if c.prog, err = c.region.Int64s(0, slots); err != nil {
		return nil, err
	}
	do := map[Scenario]string{WaitThenRead: doStdout, StdoutThenStderr: doStderr, BothDirections: doEcho}[sc]
	cmd := procs.Command(ctx, ChildRole, "-do", do, "-bytes", strconv.FormatInt(n, 10), "-chunk", strconv.Itoa(cfg.chunk()))
	cmd.ExtraFiles = []*os.File{nil, c.region.File()}
	var w *os.File
	if c.stdout, w, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	childEnds = append(childEnds, w)
	cmd.Stdout = w
	if sc == StdoutThenStderr {
		if c.stderr, w, err = os.Pipe(); err != nil {
			return nil, fmt.Errorf("stderr pipe: %w", err)
		}
		childEnds = append(childEnds, w)
		cmd.ExtraFiles = append(cmd.ExtraFiles, w) // procs.FDExtra, moved onto fd 2
	}
	if sc == BothDirections {
		var r *os.File
		if r, c.stdin, err = os.Pipe(); err != nil {
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		childEnds = append(childEnds, r)
		cmd.Stdin = r
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.cmd = cmd
	return c, nil
}

// wait reaps the child once.
func (c *child) wait() error {
	if c.waited || c.cmd == nil {
		return nil
	}
	c.waited = true
	return c.cmd.Wait()
}

// kill stops the child (SIGTERM, then SIGKILL) and reaps it.
func (c *child) kill() {
	c.cancel()
	c.wait()
}

func (c *child) close() {
	if c.cmd != nil {
		c.kill()
	}
	c.cancel()
	for _, f := range []*os.File{c.stdin, c.stdout, c.stderr} {
		if f != nil {
			f.Close()
		}
	}
	if c.region != nil {
		c.region.Close()
	}
}

// watched is the pipe the child fills in the scenario.
func (c *child) watched() *os.File {
	if c.stderr != nil {
		return c.stderr
	}
	return c.stdout
}

// Deadlock runs scenario sc with n bytes: the broken code under a
// watchdog, then the fixed code. It fails only when the lab itself cannot
// run (a child does not start, ctx ends); the outcomes are in the Run.
func Deadlock(ctx context.Context, sc Scenario, n int64, cfg Config) (Run, error) {
	run := Run{Scenario: sc, Bytes: n}
	if err := broken(ctx, sc, n, cfg, &run); err != nil {
		return run, err
	}
	if err := fixed(ctx, sc, n, cfg, &run); err != nil {
		return run, err
	}
	kids, err := procs.Children(os.Getpid())
	if err != nil {
		return run, err
	}
	run.ChildrenLeft = len(kids)
	return run, nil
}

func broken(ctx context.Context, sc Scenario, n int64, cfg Config, run *Run) error {
	c, err := startChild(ctx, sc, n, cfg)
	if err != nil {
		return err
	}
	defer c.close()
	if run.PipeCapacity, err = pipes.Capacity(c.watched()); err != nil {
		return err
	}
	start := time.Now()
	var parentProgress atomic.Int64 // what the parent moved: read or written
	if sc == WaitThenRead {
		c.waited = true // the goroutine below owns the one Wait
	}
	done := make(chan error, 1)
	go func() {
		switch sc {
		case WaitThenRead:
			// The mistake: wait for the child, then read its output.
			err := c.cmd.Wait()
			if err == nil {
				var k int64
				k, err = io.Copy(io.Discard, c.stdout)
				parentProgress.Add(k)
			}
			done <- err
		case StdoutThenStderr:
			// The mistake: read stdout to EOF, then stderr.
			k, err := io.Copy(io.Discard, c.stdout)
			parentProgress.Add(k)
			if err == nil {
				k, err = io.Copy(io.Discard, c.stderr)
				parentProgress.Add(k)
			}
			done <- err
		case BothDirections:
			// The mistake: write all the input, then read the output.
			buf := make([]byte, 4096)
			var err error
			for left := n; left > 0 && err == nil; {
				var k int
				k, err = c.stdin.Write(buf[:min(int64(len(buf)), left)])
				left -= int64(k)
				parentProgress.Add(int64(k))
			}
			c.stdin.Close()
			if err == nil {
				_, err = io.Copy(io.Discard, c.stdout)
			}
			done <- err
		default:
			done <- fmt.Errorf("unknown scenario %q", sc)
		}
	}()
	progress := func() int64 { return c.prog.Load(slotWritten) }
	last, lastChange := progress()+parentProgress.Load(), time.Now()
	looks := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			c.wait()
			run.BrokenElapsed = time.Since(start)
			run.BlockedAfterBytes = progress()
			run.ParentWritten = parentProgress.Load()
			return nil
		case <-ctx.Done():
			c.kill()
			<-done
			return context.Cause(ctx)
		case <-tick.C:
		}
		if p := progress() + parentProgress.Load(); p != last {
			last, lastChange = p, time.Now()
			continue
		}
		if time.Since(lastChange) < cfg.timeout() {
			continue
		}
		v, err := pipes.Observe(ctx, pipes.Watch{PID: c.cmd.Pid(), Pipe: c.watched(), Progress: progress, Window: cfg.window()})
		if err != nil {
			c.kill()
			<-done
			return fmt.Errorf("stall detector: %w", err)
		}
		select {
		case <-done:
			// It finished while we looked: slow, not stuck.
			c.wait()
			run.BrokenElapsed = time.Since(start)
			run.BlockedAfterBytes = progress()
			run.ParentWritten = parentProgress.Load()
			return nil
		default:
		}
		if !v.Blocked && looks < maxLooks {
			// No proof of a deadlock: a child that is merely slow (or
			// slow to start on a loaded machine) gets more time.
			looks++
			last, lastChange = progress()+parentProgress.Load(), time.Now()
			continue
		}
		run.Hung = true
		run.Deadlocked, run.Verdict, run.Evidence = v.Blocked, v.Reason, &v.Evidence
		run.BlockedAfterBytes = progress()
		if sc == BothDirections {
			run.ParentWritten = parentProgress.Load()
			if b, err := pipes.Buffered(c.stdin); err == nil {
				run.StdinBuffered = b
			}
		}
		// The child's death ends the parent's wait, read or write.
		c.kill()
		<-done
		run.BrokenElapsed = time.Since(start)
		return nil
	}
}

// maxLooks is how many times the watchdog looks at a child that makes no
// progress without the evidence of a deadlock before it gives up on it and
// kills it anyway.
const maxLooks = 3

// fixedLimit bounds how long the fixed code may take: far longer than it
// needs, so that only a real hang trips it.
func fixedLimit(n int64) time.Duration { return 30*time.Second + time.Duration(n/(1<<20))*time.Second }

func fixed(ctx context.Context, sc Scenario, n int64, cfg Config, run *Run) error {
	fctx, cancel := context.WithTimeout(ctx, fixedLimit(n))
	defer cancel()
	c, err := startChild(fctx, sc, n, cfg)
	if err != nil {
		return err
	}
	defer c.close()
	start := time.Now()
	// Drains on every pipe the child writes, started before anything
	// waits: the child can always make progress.
	out := pipes.StartDrain(c.stdout, 4096, pipes.KeepTail)
	var errOut *pipes.Drain
	if c.stderr != nil {
		errOut = pipes.StartDrain(c.stderr, 4096, pipes.KeepTail)
	}
	var feedErr error
	feedDone := make(chan struct{})
	if c.stdin != nil {
		// Feed stdin from its own goroutine while the drain reads stdout.
		go func() {
			defer close(feedDone)
			buf := make([]byte, 64<<10)
			for left := n; left > 0; {
				k, err := c.stdin.Write(buf[:min(int64(len(buf)), left)])
				left -= int64(k)
				if err != nil {
					feedErr = err
					break
				}
			}
			c.stdin.Close()
		}()
	} else {
		close(feedDone)
	}
	waitErr := c.wait()
	<-feedDone
	_, outTotal, outErr := out.Wait()
	got := outTotal
	var errErr error
	if errOut != nil {
		var errTotal int64
		_, errTotal, errErr = errOut.Wait()
		got = errTotal
	}
	run.FixedElapsed = time.Since(start)
	run.FixedBytes = got
	switch err := errors.Join(waitErr, feedErr, outErr, errErr); {
	case err != nil:
		run.FixedErr = err.Error()
	case got != n:
		run.FixedErr = fmt.Sprintf("received %d bytes, want %d", got, n)
	default:
		run.FixedCompleted = true
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}
