package shmlab

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/procs/cost"
)

func condCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "cond [flags]",
		Short:     "the notebook's Condition: a producer and consumers share a bounded buffer",
		Long: `The classic notebook's Condition example, with a bounded buffer: one producer puts the items 1..N into a ring of --capacity slots, and --consumers consumers take them, all under one mutex and two condition variables. The producer waits on not-full while the buffer is full and signals not-empty after each put; a consumer waits on not-empty while it is empty and signals not-full after each take. When the producer is done it sets a closed flag and broadcasts not-empty, and the consumers drain the rest and stop.

Two conditions, not one with Broadcast: with one condition a consumer's Signal can wake another consumer instead of the waiting producer (the wake-up is spent and the producer sleeps on), so one condition needs Broadcast, which wakes every waiter to find the buffer empty again. Two conditions let each Signal wake only a worker that can go on.

In procs mode the workers are child processes mapping one memfd region, with shm.Mutex and shm.Cond (futex(2) words in the region); in goroutines mode they are goroutines with sync.Mutex and sync.Cond. Both run the same worker code.

The lab checks that every item was taken exactly once (count, sum and sum of squares) and that the buffer never held more than its capacity. It measures items per second; the wake-up latency, from a Signal to the waiter running again with the mutex held (each Signal that has a sleeper to wake is stamped with CLOCK_MONOTONIC through the vDSO, one clock for every process, and the woken waiter subtracts; a sample of up to 2,048 wake-ups per worker); and the futex(2) system calls per item, counted in the workers by the kernel's syscalls:sys_enter_futex tracepoint (the Go runtime's own futex calls included).

Examples:
  ipcplay shm cond
  ipcplay shm cond --consumers 4 --capacity 1 --items 20000
  ipcplay shm cond --mode procs --items 1000000 --json`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	consumers := base.IntFlag(f, "consumers", 2, 1, MaxConsumers, "consumers (the producer is one more worker)")
	items := base.IntFlag(f, "items", 100_000, 1, MaxItems, "items the producer puts")
	capacity := base.IntFlag(f, "capacity", 16, 1, MaxCapacity, "items the bounded buffer holds")
	mode := base.ModeFlag(f, base.Both)
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		cfg := CondConfig{Consumers: *consumers, Items: *items, Capacity: *capacity}
		return runCond(ctx, env, out, cfg, mode.Modes())
	}
	return cmd
}

func runCond(ctx context.Context, env *base.Env, out *base.Output, cfg CondConfig, modes []Mode) error {
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	var runs []CondResult
	for i, m := range modes {
		prog.Set(float64(i), float64(len(modes)), "shm cond: %s", m)
		c := cfg
		c.Mode = m
		res, err := Cond(ctx, c)
		if err != nil {
			return err
		}
		runs = append(runs, res)
	}
	prog.Done()
	r, bad := condReport(cfg, modes, runs)
	if err := report.Write(env, out, r); err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("%d runs lost, duplicated or overfilled items", bad)
	}
	return nil
}

// condReport builds the report of a cond run and counts the runs that
// broke a check (a bug).
func condReport(cfg CondConfig, modes []Mode, runs []CondResult) (*report.Report, int) {
	r := report.New("shm cond", fmt.Sprintf("shm cond: 1 producer, %d consumers, %s items through a buffer of %d",
		cfg.Consumers, base.Count(int64(cfg.Items)), cfg.Capacity))
	r.Config["consumers"] = cfg.Consumers
	r.Config["items"] = cfg.Items
	r.Config["capacity"] = cfg.Capacity
	r.Config["modes"] = modes
	r.Config["conditions"] = "two: not-empty and not-full, Signal"

	var fastest float64
	for _, x := range runs {
		fastest = max(fastest, x.ItemsPerSec())
	}
	t := r.Table("runs", "the bounded buffer",
		report.Col("mode", "mode", report.Text),
		report.Col("items_per_sec", "items", report.PerSec),
		report.Opt("slower", "slower", report.Ratio, 2),
		report.Opt("consumed", "consumed", report.Int, 4),
		report.Col("exactly_once", "once", report.Bool),
		report.Col("max_fill", "max fill", report.Int),
		report.Col("futex_per_item", "futex/item", report.Float),
		report.Opt("elapsed_ns", "time", report.Millis, 3),
	)
	bad := 0
	for _, x := range runs {
		if !x.ExactlyOnce() || x.Overfull != 0 || x.MaxFill > int64(x.Capacity) {
			bad++
		}
		var slower, futex any
		if ips := x.ItemsPerSec(); ips > 0 {
			slower = fastest / ips
		}
		if f := x.FutexPerItem(); f >= 0 {
			futex = f
		}
		t.Row(string(x.Mode), x.ItemsPerSec(), slower, x.Consumed, x.ExactlyOnce(), x.MaxFill, futex, x.Elapsed)
	}
	t.Notef("ITEMS is items per second, from the start signal until every worker is done; SLOWER is the fastest row's rate over this one's. ONCE: the consumers took %s items whose sum and sum of squares match 1..%s. MAX FILL is the fullest the buffer was after a put (at most %d). FUTEX/ITEM counts futex(2) calls of every thread of the workers, the Go runtime's included.",
		base.Count(int64(cfg.Items)), base.Count(int64(cfg.Items)), cfg.Capacity)

	w := r.Table("wakeups", "wake-ups, from Signal to the waiter running",
		report.Col("mode", "mode", report.Text),
		report.Col("waiter", "waiter", report.Text),
		report.Col("waits", "waits", report.Int),
		report.Opt("sampled", "sampled", report.Int, 1),
		report.Col("p50_ns", "p50", report.Micros),
		report.Col("p99_ns", "p99", report.Micros),
	)
	for _, x := range runs {
		for _, k := range []struct {
			who   string
			waits int64
			lat   []time.Duration
		}{{"consumers", x.ConsumerWaits, x.ConsumerWake}, {"producer", x.ProducerWaits, x.ProducerWake}} {
			var p50, p99 any
			if len(k.lat) > 0 {
				p50, p99 = percentile(k.lat, 50), percentile(k.lat, 99)
			}
			w.Row(string(x.Mode), k.who, k.waits, int64(len(k.lat)), p50, p99)
		}
	}
	w.Notef("WAITS: times a consumer found the buffer empty (and waited on not-empty) or the producer found it full (not-full). P50 and P99 are over SAMPLED wake-ups: a Signal that found a sleeper is stamped, and the waiter it woke reads the clock once it holds the mutex again. A waiter that wakes with no stamp to match (the close broadcast, a 20 ms slice of shm.Cond's wait) is not sampled.")

	ct := r.CostTable("item")
	for _, x := range runs {
		if x.CostErr != nil {
			r.Warnf("cost of %s not measured: %v", x.Mode, x.CostErr)
			continue
		}
		b := x.Cost.Per(uint64(max(x.Consumed, 0)))
		ct.Add(string(x.Mode), b)
	}
	ct.Finish()
	if cpus := runtime.NumCPU(); cfg.Consumers+1 > cpus {
		r.Warnf("%d workers on %d CPUs: a woken waiter often waits for a CPU too, which the wake-up latency includes", cfg.Consumers+1, cpus)
	}
	condVerdict(r, runs, bad)
	return r, bad
}

func condVerdict(r *report.Report, runs []CondResult, bad int) {
	if bad > 0 {
		for _, x := range runs {
			if !x.ExactlyOnce() || x.Overfull != 0 || x.MaxFill > int64(x.Capacity) {
				r.Verdictf("FAILED: %s took %s of %s items (sum %d, want %d); %d puts or takes left the buffer over capacity or below empty: a bug in the lab or in package shm",
					x.Mode, base.Count(x.Consumed), base.Count(int64(x.Items)), x.Sum, x.WantSum, x.Overfull)
			}
		}
		r.Warnf("items were lost or duplicated, or the buffer overfilled")
		return
	}
	r.Verdictf("every item was taken exactly once; the buffer never held over %d", runs[0].Capacity)
	find := func(m Mode) *CondResult {
		for i := range runs {
			if runs[i].Mode == m {
				return &runs[i]
			}
		}
		return nil
	}
	p, g := find(Procs), find(Goroutines)
	wake := func(x *CondResult) string {
		if len(x.ConsumerWake) == 0 {
			return "never (no consumer waited)"
		}
		return base.Human(percentile(x.ConsumerWake, 50))
	}
	futex := func(x *CondResult) string {
		if f := x.FutexPerItem(); f >= 0 {
			return fmt.Sprintf("%s futex calls per item", cost.Num(f))
		}
		return "futex calls not counted"
	}
	switch {
	case p != nil && g != nil:
		ratio := g.ItemsPerSec() / max(p.ItemsPerSec(), 1e-9)
		how := "slower"
		if ratio < 1 {
			ratio, how = 1/ratio, "faster"
		}
		r.Verdictf("hand-offs between processes ran at %s items/s against %s between goroutines (%.1fx %s); a consumer process ran %s after the Signal that woke it (median), a goroutine %s; processes made %s, goroutines %s",
			compact(p.ItemsPerSec()), compact(g.ItemsPerSec()), ratio, how,
			wake(p), wake(g), futex(p), strings.TrimSuffix(futex(g), " futex calls per item"))
	case p != nil:
		r.Verdictf("hand-offs between processes ran at %s items/s; a consumer process ran %s after the Signal that woke it (median); %s",
			compact(p.ItemsPerSec()), wake(p), futex(p))
	case g != nil:
		r.Verdictf("hand-offs between goroutines ran at %s items/s; a consumer goroutine ran %s after the Signal that woke it (median); %s",
			compact(g.ItemsPerSec()), wake(g), futex(g))
	}
}

// compact formats a rate for prose: 1.2M, 350k, 980.
func compact(f float64) string {
	switch {
	case f >= 1e6:
		return strings.TrimSuffix(fmt.Sprintf("%.3g", f/1e6), ".0") + "M"
	case f >= 1e3:
		return fmt.Sprintf("%.3gk", f/1e3)
	}
	return fmt.Sprintf("%.3g", f)
}
