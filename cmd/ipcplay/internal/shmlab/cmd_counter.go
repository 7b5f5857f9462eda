package shmlab

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

func counterCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "counter [flags]",
		Short:     "P workers increment one shared counter: lost updates, atomics, a futex mutex",
		Long: `P workers increment one shared counter N times each, as child processes mapping one memfd region and as goroutines:

  none    load, add one, store: two workers that load the same value
          both store value+1, and one update is lost. The lab counts
          the loss of this run; it differs from run to run.
  atomic  one atomic add (shm.Value.Add across processes, sync/atomic
          across goroutines): exact.
  mutex   load, add one, store under a lock (shm.Mutex, a futex, across
          processes; sync.Mutex across goroutines): exact.

Each worker also counts its own increments on the side, so the lab knows the work done and the loss apart. TIME runs from the start signal, after every worker is ready, until the last one is done.

Examples:
  ipcplay shm counter --procs 4
  ipcplay shm counter --sync none --increments 1000000
  ipcplay shm counter --sync mutex --mode procs --json`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	workers := base.IntFlag(f, "procs", 4, 1, MaxWorkers, "workers: child processes, and as many goroutines")
	increments := base.IntFlag(f, "increments", 200_000, 1, MaxIncrements, "increments per worker")
	syncName := base.ChoiceFlag(f, "sync", "all", []string{"none", "atomic", "mutex", "all"}, "synchronization")
	mode := base.ModeFlag(f, base.Both)
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		syncs, err := ParseSync(*syncName) // ChoiceFlag has checked it
		if err != nil {
			return err
		}
		return runCounter(ctx, env, out, *workers, *increments, syncs, mode.Modes())
	}
	return cmd
}

func runCounter(ctx context.Context, env *base.Env, out *base.Output, workers, increments int, syncs []Sync, modes []Mode) error {
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	var runs []CounterResult
	for i, s := range syncs {
		for j, m := range modes {
			prog.Set(float64(i*len(modes)+j), float64(len(syncs)*len(modes)), "shm counter: %s on %s", s, m)
			res, err := Counter(ctx, CounterConfig{Workers: workers, Increments: increments, Sync: s, Mode: m})
			if err != nil {
				return err
			}
			runs = append(runs, res)
		}
	}
	prog.Done()
	r, inexact := counterReport(workers, increments, syncs, modes, runs)
	if err := report.Write(env, out, r); err != nil {
		return err
	}
	if inexact > 0 {
		return fmt.Errorf("%d synchronized runs lost updates", inexact)
	}
	return nil
}

// perIncrement is a run's time over its increments.
func perIncrement(r CounterResult) time.Duration {
	return r.Elapsed / time.Duration(max(r.Done, 1))
}

// nsPer is perIncrement in fractions of a nanosecond, for ratios.
func nsPer(r CounterResult) float64 { return float64(r.Elapsed) / float64(max(r.Done, 1)) }

// counterReport builds the report of a counter run and counts the
// synchronized runs that lost updates (a bug).
func counterReport(workers, increments int, syncs []Sync, modes []Mode, runs []CounterResult) (*report.Report, int) {
	r := report.New("shm counter", fmt.Sprintf("shm counter: %d workers x %s increments each",
		workers, base.Count(int64(increments))))
	r.Config["procs"] = workers
	r.Config["increments"] = increments
	r.Config["syncs"] = syncs
	r.Config["modes"] = modes
	t := r.Table("runs", "the shared counter",
		report.Col("sync", "sync", report.Text),
		report.Col("mode", "mode", report.Text),
		report.Opt("expected", "expected", report.Int, 1),
		report.Opt("done", "done", report.Int, 3),
		report.Col("final", "final", report.Int),
		report.Col("lost", "lost", report.Int),
		report.Opt("lost_percent", "lost%", report.Percent, 2),
		report.Col("elapsed_ns", "time", report.Millis),
		report.Col("per_increment_ns", "per incr", report.Nanos),
	)
	inexact := 0
	for _, run := range runs {
		var pct any
		if run.Sync == None {
			pct = 100 * float64(run.Lost) / float64(max(run.Done, 1))
		} else if run.Lost != 0 {
			inexact++
		}
		t.Row(string(run.Sync), string(run.Mode), run.Expected, run.Done, run.Final, run.Lost, pct,
			run.Elapsed, perIncrement(run))
	}
	t.Notef("LOST is DONE (the increments the workers counted) minus FINAL. For none it is what this run lost, not a property of the code: run it again and it changes. PER INCR is TIME over every worker's increments.")
	if cpus := runtime.NumCPU(); workers > cpus {
		r.Warnf("%d workers on %d CPUs: workers take turns, so the times measure the scheduler's time slicing as much as the increments", workers, cpus)
	}
	find := func(s Sync, m Mode) *CounterResult {
		for i := range runs {
			if runs[i].Sync == s && runs[i].Mode == m {
				return &runs[i]
			}
		}
		return nil
	}
	var lost []string
	lucky := false
	for _, m := range modes {
		if n := find(None, m); n != nil {
			lost = append(lost, fmt.Sprintf("%s lost %s of %s updates (%.1f%%)",
				m, base.Count(n.Lost), base.Count(n.Done), 100*float64(n.Lost)/float64(max(n.Done, 1))))
			lucky = lucky || n.Lost == 0
		}
	}
	if len(lost) > 0 {
		v := "lost updates without synchronization: " + strings.Join(lost, " and ") + " this time; a load and a store are two steps, and a store another worker makes between them is overwritten"
		if lucky {
			v += "; losing none is luck, not correctness (a worker seldom loses its CPU between the two): run it again or with more --increments"
		}
		r.Verdictf("%s", v)
	}
	if inexact > 0 {
		r.Verdictf("%d synchronized runs were NOT exact: that is a bug in the lab or in package shm", inexact)
		r.Warnf("a synchronized count lost updates")
	} else if len(syncs) > 1 || syncs[0] != None {
		r.Verdictf("every atomic and mutex count was exact")
	}
	for _, c := range []struct {
		s    Sync
		what string
	}{{Lock, "a contended mutex (a futex across processes, sync.Mutex across goroutines)"}, {Atomic, "an atomic add"}} {
		p, g := find(c.s, Procs), find(c.s, Goroutines)
		if p == nil || g == nil {
			continue
		}
		r.Verdictf("%s cost %s an increment across processes and %s across goroutines (%.2fx)",
			c.what, base.Human(perIncrement(*p)), base.Human(perIncrement(*g)),
			nsPer(*p)/max(nsPer(*g), 1e-3))
	}
	return r, inexact
}
