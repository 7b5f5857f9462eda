package rpclab

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// ManagerCommand returns the manager command.
func ManagerCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "manager [flags]",
		Short:     "a shared list and dict: a server process over RPC, shared memory with a futex mutex, goroutines",
		Long: `Python's multiprocessing.Manager, done with data only. P workers each do N operations on a shared list and dict, an operation being one append to the list and one increment of a dict entry. The lab checks the final state (every value once, each worker's in order, the count right) and times the work done three ways:

  procs via rpc   worker processes call a server child process that
                  holds the state, over authenticated msgpack RPC on a
                  Unix socket: two round trips per operation
  procs via shm   worker processes share the state in one memfd region
                  under a futex mutex (package shm)
  goroutines      goroutines share the server's Go structures under one
                  sync.Mutex

Examples:
  ipcplay manager
  ipcplay manager --procs 8 --ops 2000 --via rpc
  ipcplay manager --mode goroutines --json`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	workers := base.IntFlag(f, "procs", 4, 1, MaxProcs, "workers: child processes, and as many goroutines")
	ops := base.IntFlag(f, "ops", 10_000, 1, MaxOps, "operations per worker (an append and an increment)")
	mode := base.ModeFlag(f, base.Both)
	via := base.ChoiceFlag(f, "via", "both", []string{"rpc", "shm", "both"}, "how worker processes share the state")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		var modes []string
		for _, m := range mode.Modes() {
			switch {
			case m == base.Goroutines:
				modes = append(modes, ModeGoroutines)
			case *via == "both":
				modes = append(modes, ModeRPC, ModeShm)
			default:
				modes = append(modes, *via)
			}
		}
		for _, m := range modes {
			if m == ModeShm && *workers**ops > MaxShmValues {
				return base.Usagef("--procs %d x --ops %s: the shared region holds at most %s values (use --via rpc)",
					*workers, base.Count(int64(*ops)), base.Count(MaxShmValues))
			}
		}
		prog := env.NewProgress(!out.JSON)
		defer prog.Done()
		cfg := ManagerConfig{Procs: *workers, Ops: *ops}
		var res []ModeResult
		for i, m := range modes {
			prog.Set(float64(i), float64(len(modes)), "manager: %s, %d workers x %s ops", m, *workers, base.Count(int64(*ops)))
			r, err := RunManager(ctx, cfg, []string{m})
			if err != nil {
				return err
			}
			res = append(res, r...)
		}
		prog.Done()
		if err := report.Write(env, out, managerReport(cfg, res)); err != nil {
			return err
		}
		var bad []error
		for _, r := range res {
			if r.Err != nil {
				bad = append(bad, fmt.Errorf("%s: final state wrong: %w", r.Mode, r.Err))
			}
		}
		return errors.Join(bad...)
	}
	return cmd
}

// how is a mode's row: where its workers run and what they share through.
func how(mode string) (workers, via string) {
	switch mode {
	case ModeRPC:
		return string(base.Procs), "rpc"
	case ModeShm:
		return string(base.Procs), "shm"
	}
	return string(base.Goroutines), "sync.Mutex"
}

func managerReport(cfg ManagerConfig, res []ModeResult) *report.Report {
	r := report.New("manager", fmt.Sprintf("manager: %d workers x %s ops (an op is an append and an increment)",
		cfg.Procs, base.Count(int64(cfg.Ops))))
	r.Config["procs"] = cfg.Procs
	r.Config["ops"] = cfg.Ops
	var modes []string
	for _, m := range res {
		modes = append(modes, m.Mode)
	}
	r.Config["modes"] = modes
	t := r.Table("modes", "the same work, three ways",
		report.Col("mode", "mode", report.Text),
		report.Col("via", "via", report.Text),
		report.Col("ops", "ops done", report.Int),
		report.Opt("calls", "calls", report.Int, 2),
		report.Col("elapsed_ns", "time", report.Millis),
		report.Col("per_op_ns", "per op", report.Nanos),
		report.Opt("rate", "ops", report.PerSec, 3),
		report.Opt("setup_ns", "setup", report.Millis, 1),
		report.Col("state_ok", "state ok", report.Bool),
	)
	for _, m := range res {
		workers, via := how(m.Mode)
		var perOp any
		if m.Ops > 0 {
			perOp = m.Elapsed / time.Duration(m.Ops)
		}
		t.Row(workers, via, m.Ops, m.Calls, m.Elapsed, perOp, m.OpsPerSec(), m.Setup, m.Err == nil)
		if m.Err != nil {
			r.Warnf("%s: the final state is WRONG: %v", m.Mode, m.Err)
		}
	}
	t.Notef("OPS DONE is the final list's length and CALLS the appends and increments the state received (round trips in rpc mode), both read from the final state. PER OP is TIME over every worker's operations together. SETUP starts the processes (rpc: the server and the workers, each authenticated; shm: the workers mapping the region) or the goroutines, until all are ready.")
	if cpus := runtime.NumCPU(); cfg.Procs > cpus {
		r.Warnf("%d workers on %d CPUs: workers take turns, so the times measure the scheduler's time slicing as much as the sharing", cfg.Procs, cpus)
	}
	managerVerdict(r, res)
	return r
}

func managerVerdict(r *report.Report, res []ModeResult) {
	find := func(mode string) (ModeResult, bool) {
		for _, m := range res {
			if m.Mode == mode {
				return m, true
			}
		}
		return ModeResult{}, false
	}
	for _, m := range res {
		if m.Err != nil {
			r.Verdictf("the final state of %s is WRONG: %v", m.Mode, m.Err)
			return
		}
	}
	g, okG := find(ModeGoroutines)
	var parts []string
	if p, ok := find(ModeRPC); ok {
		s := fmt.Sprintf("worker processes calling a server process took %s an op", base.Human(perOp(p)))
		if okG {
			s += fmt.Sprintf(" (%.0fx a sync.Mutex)", p.NsPerOp()/max(g.NsPerOp(), 1e-3))
		}
		parts = append(parts, s)
	}
	if m, ok := find(ModeShm); ok {
		s := fmt.Sprintf("sharing memory under a futex mutex %s", base.Human(perOp(m)))
		if okG {
			s += fmt.Sprintf(" (%.1fx)", m.NsPerOp()/max(g.NsPerOp(), 1e-3))
		}
		parts = append(parts, s)
	}
	if okG {
		parts = append(parts, fmt.Sprintf("goroutines under a sync.Mutex %s", base.Human(perOp(g))))
	}
	v := "the state checked out every way"
	if len(res) == 1 {
		v = "the state checked out"
	}
	if len(parts) > 0 {
		v += "; " + strings.Join(parts, ", ")
	}
	r.Verdictf("%s", v)
	if _, ok := find(ModeRPC); ok {
		r.Verdictf("a server process buys isolation (workers touch only what its methods allow) with two round trips an op; shared memory shares everything, and a worker that dies mid-update can leave it half-done")
	}
}

func perOp(m ModeResult) time.Duration { return m.Elapsed / time.Duration(max(m.Ops, 1)) }
