package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/procs"
	"ipcplay/procs/pool"
)

// RegisterRoles registers the lab's child roles with procs.
func RegisterRoles() {
	procs.Register(WorkerRole, pool.WorkerMain(pool.Typed(square)))
	procs.Register(ProducerRole, producerMain)
	procs.Register(ConsumerRole, consumerMain)
	procs.Register(HolderRole, holderMain)
}

// maxSeed bounds --seed so that JSON readers keep it exact (2^53-1).
const maxSeed = 1<<53 - 1

// Command returns the chaos command.
func Command() *base.Command {
	cmd := &base.Command{
		UsageLine: "chaos [flags]",
		Short:     "SIGKILL pool workers, queue producers and consumers, and lock holders at random; check every result",
		Long: `Runs iterations of real work between processes and SIGKILLs one of them at planned moments: a worker of a procs/pool map (its chunks are sent again to a replacement), a producer or consumer of an ipc.Queue (a dead consumer's prefetched values are lost with it, and the hub counts them), or a process inside a shm.Mutex (the next taker is told the owner died).

Afterwards every result must have come back exactly once, or be reported lost together with the dead process that held it; no iteration may hang (each has a deadline); and no child process, open fd, memfd or socket file may be left, counted from /proc before and after.

The kill schedule (which target, which victim, after how many results) comes from --seed alone and is printed with the results; the same seed replays it. Where a kill lands within the victim's work still depends on timing.

Examples:
  ipcplay chaos
  ipcplay chaos --kills 1000 --seed 1
  ipcplay chaos --target queue --kills 20 --json`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	kills := base.IntFlag(f, "kills", 100, 1, 100_000, "SIGKILLs to send")
	seed := base.IntFlag(f, "seed", 0, 0, maxSeed, "seed of the kill schedule; 0 derives one from the clock (printed, to replay)")
	target := base.ChoiceFlag(f, "target", All, Targets, "what to kill")
	deadline := base.DurationFlag(f, "deadline", 60*time.Second, time.Second, 10*time.Minute, "the most one iteration may take before it counts as a hang")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		s := uint64(*seed)
		if s == 0 {
			s = uint64(time.Now().UnixNano())%maxSeed + 1
		}
		return run(ctx, env, out, Config{Kills: *kills, Seed: s, Target: *target, Deadline: *deadline})
	}
	return cmd
}

// Config is one chaos run's settings.
type Config struct {
	Kills    int
	Seed     uint64
	Target   string
	Deadline time.Duration
}

func run(ctx context.Context, env *base.Env, out *base.Output, cfg Config) error {
	plan := Plan(cfg.Seed, cfg.Kills, cfg.Target)
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	tmp, restore, err := withTempDir()
	if err != nil {
		return err
	}
	defer restore()
	warmUp()
	before, err := takeSnapshot(tmp)
	if err != nil {
		return err
	}
	start := time.Now()
	var outs []Outcome
	for _, it := range plan {
		prog.Set(float64(it.N), float64(len(plan)), "chaos: iteration %d of %d (%s, %d kills)", it.N+1, len(plan), it.Target, len(it.Kills))
		o := runIteration(ctx, it, cfg.Deadline)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		outs = append(outs, o)
	}
	elapsed := time.Since(start)
	after, err := takeSnapshot(tmp)
	if err != nil {
		return err
	}
	prog.Done()
	if err := restore(); err != nil {
		return err
	}
	l := &lab{cfg: cfg, plan: plan, outs: outs, left: leftovers(before, after), elapsed: elapsed}
	if err := report.Write(env, out, l.report()); err != nil {
		return err
	}
	return l.failure()
}

// warmUp makes the runtime open what it keeps open for good (the network
// poller's descriptors) before the first snapshot, so that they do not
// count as left over.
func warmUp() {
	if r, w, err := os.Pipe(); err == nil {
		r.SetReadDeadline(time.Now())
		r.Close()
		w.Close()
	}
}

// runIteration runs it under its deadline.
func runIteration(ctx context.Context, it Iteration, deadline time.Duration) Outcome {
	ictx, cancel := context.WithTimeoutCause(ctx, deadline, context.DeadlineExceeded)
	defer cancel()
	start := time.Now()
	var o Outcome
	switch it.Target {
	case Pool:
		o = runPool(ictx, it)
	case Queue:
		o = runQueue(ictx, it)
	case Shm:
		o = runShm(ictx, it)
	default:
		o = Outcome{Iteration: it, Err: fmt.Errorf("unknown target %q", it.Target)}
	}
	o.Took = time.Since(start)
	return o
}

// failure is the error the run ends with: nil when every check passed.
func (l *lab) failure() error {
	var errs []error
	for _, o := range l.outs {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("iteration %d (%s): %w", o.N, o.Target, o.Err))
		}
	}
	for _, lo := range l.left {
		if len(lo.Left) > 0 {
			errs = append(errs, fmt.Errorf("left over: %d %s: %s", len(lo.Left), lo.What, strings.Join(lo.Left, ", ")))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("chaos (seed %d): %w", l.cfg.Seed, errors.Join(errs...))
}
