package factor

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/procs"
)

// RegisterRoles registers the lab's child roles with procs.
func RegisterRoles() { procs.Register(WorkerRole, WorkerMain) }

// sweepSizes are the chunk sizes of --sweep.
var sweepSizes = []int{1, 10, 100, 1000, 10000}

// Command returns the factor command.
func Command() *base.Command {
	cmd := &base.Command{
		UsageLine: "factor [flags]",
		Short:     "factorize_naive over 1..N on a pool of processes that survives dying workers, against goroutines",
		Long: `Runs the classic factorize_naive(n) for every n in 1..N, one task per n, on a pool of P worker processes (procs/pool) and on P goroutines fed the same chunks of C tasks over a channel. A chunk is one message each way between processes, so the cost of messages shows as the difference between the two, per task; --sweep runs chunk sizes 1, 10, 100, 1000 and 10000 to show it falling as chunks grow and more tasks share each message.

Every run sums the prime factors of every n (with multiplicity) and checks the sum against a sieve. --kill-worker SIGKILLs a pool worker half way: the pool notices, replaces it, re-sends its chunks, and the sum still matches. --kill K then runs K more maps of n in 1..min(N, 20,000), SIGKILLs a worker holding tasks half way through each, and times the recovery: until the pool has replaced the worker and queued its tasks again, and until those tasks came back from other workers; every result must still come exactly once.

Examples:
  ipcplay factor
  ipcplay factor --upto 200000 --sweep
  ipcplay factor --procs 2 --kill-worker
  ipcplay factor --upto 100000 --kill 20`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	upto := base.IntFlag(f, "upto", DefaultUpTo, 1, MaxSieve, "factorize every n in 1..N")
	workers := base.ProcsFlag(f, runtime.NumCPU())
	chunk := base.IntFlag(f, "chunksize", 0, 0, 1_000_000, "tasks per message; 0 lets the pool choose: chunks a worker runs in about 10 ms (it measures), at most N/(8 x workers), so every worker gets several")
	sweep := f.Bool("sweep", false, "run chunk sizes "+strings.Trim(fmt.Sprint(sweepSizes), "[]")+" instead of --chunksize")
	kill := f.Bool("kill-worker", false, "SIGKILL one pool worker half way through each pool run")
	kills := base.IntFlag(f, "kill", 0, 0, MaxKills, "after the runs, time the recovery from this many SIGKILLs of a busy worker (0: none)")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		sizes := []int{*chunk}
		if *sweep {
			if *chunk != 0 {
				return base.Usagef("--chunksize and --sweep: choose one")
			}
			sizes = sweepSizes
		}
		return runLab(ctx, env, out, uint64(*upto), *workers, sizes, *kill, *kills)
	}
	return cmd
}

func runLab(ctx context.Context, env *base.Env, out *base.Output, upto uint64, workers int, sizes []int, kill bool, kills int) error {
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	start := time.Now()
	l := &lab{upto: upto, workers: workers, sweep: len(sizes) > 1, kill: kill}
	l.want = SieveSum(upto)
	l.sieve = time.Since(start)
	for i, size := range sizes {
		for j, mode := range []Mode{Procs, Goroutines} {
			step := float64(i*2 + j)
			cfg := Config{
				UpTo: upto, Workers: workers, ChunkSize: size,
				KillWorker:    kill && mode == Procs,
				SpawnBaseline: spawnBaseline(i, mode),
				Progress: func(done, total uint64) {
					prog.Set(step+float64(done)/float64(max(total, 1)), float64(2*len(sizes)),
						"factor: %s, chunks of %d", mode, size)
				},
			}
			res, err := Run(ctx, mode, cfg)
			if err != nil {
				return err
			}
			l.runs = append(l.runs, res)
		}
	}
	var rec *RecoveryResult
	if kills > 0 {
		x, err := MeasureRecovery(ctx, workers, kills, upto, func(done, total int) {
			prog.Set(float64(done), float64(total), "factor: recovery from %d SIGKILLs", total)
		})
		if err != nil {
			return err
		}
		rec = &x
	}
	prog.Done()
	r := l.report()
	if rec != nil {
		addRecovery(r, *rec)
	}
	if err := report.Write(env, out, r); err != nil {
		return err
	}
	if rec != nil && !rec.OK() {
		return fmt.Errorf("recovery maps: %d results twice, %d missing, %d failed, %d wrong sums", rec.Twice, rec.Missing, rec.Failed, rec.WrongSums)
	}
	if !l.verified() {
		return fmt.Errorf("a run's sum of factors differs from the sieve's %d", l.want)
	}
	return nil
}

// spawnBaseline times five bare re-execs before the first pool starts, so
// the workers' start-up compares with the floor measured in the same run.
func spawnBaseline(run int, mode Mode) int {
	if run == 0 && mode == Procs {
		return 5
	}
	return 0
}

// chunkOf is a run's chunk size: the one asked for, or the average the
// pool chose.
func chunkOf(r Result) int {
	if r.ChunkSize > 0 || r.Chunks == 0 {
		return r.ChunkSize
	}
	return int(r.Tasks / r.Chunks)
}

type lab struct {
	upto    uint64
	workers int
	sweep   bool
	kill    bool
	want    uint64        // the sieve's sum
	sieve   time.Duration // how long the sieve took
	runs    []Result
}

// pairs returns the procs and goroutines runs of each chunk size.
func (l *lab) pairs() [][2]Result {
	var out [][2]Result
	for i := 0; i+1 < len(l.runs); i += 2 {
		out = append(out, [2]Result{l.runs[i], l.runs[i+1]})
	}
	return out
}

// overhead is what each task cost the pool beyond the goroutines' time,
// spread over the workers: (procs - goroutines) x workers / tasks. With one
// task per chunk it is the cost of a message round trip; as chunks grow
// that cost is shared by more tasks, and what is left is encoding and
// decoding.
func overhead(p, g Result) time.Duration {
	if p.Tasks == 0 {
		return 0
	}
	return (p.Elapsed - g.Elapsed) * time.Duration(p.Workers) / time.Duration(p.Tasks)
}

func (l *lab) verified() bool {
	for _, run := range l.runs {
		if run.SumOfFactors != l.want {
			return false
		}
	}
	return true
}

func ratio(a, b time.Duration) any {
	if b <= 0 {
		return nil
	}
	return float64(a) / float64(b)
}

func (l *lab) report() *report.Report {
	r := report.New("factor", fmt.Sprintf("factor: factorize_naive(n) for n in 1..%s on %d workers",
		base.Count(int64(l.upto)), l.workers))
	r.Config["upto"] = l.upto
	r.Config["procs"] = l.workers
	r.Config["kill_worker"] = l.kill
	t := r.Table("runs", "runs",
		report.Col("chunk", "chunk", report.Int),
		report.Col("mode", "mode", report.Text),
		report.Col("elapsed_ns", "time", report.Seconds),
		report.Opt("cpu_ns", "cpu", report.Seconds, 3),
		report.Col("tasks_per_sec", "tasks", report.PerSec),
		report.Opt("chunks", "chunks", report.Int, 4),
		report.Opt("setup_ns", "setup", report.Millis, 2),
		report.Opt("sum_of_factors", "sum of factors", report.BigInt, 5),
		report.Col("verified", "ok", report.Bool),
		report.Opt("deaths", "deaths", report.Int, 1),
	)
	for _, run := range l.runs {
		var deaths any
		if run.Mode == Procs {
			deaths = len(run.Events)
		}
		t.Row(chunkOf(run), string(run.Mode), run.Elapsed, run.CPU, run.TasksPerSecond(), int64(run.Chunks),
			run.Setup, run.SumOfFactors, run.SumOfFactors == l.want, deaths)
	}
	t.Notef("the sieve says the sum is %d (%s). The pool's parent dispatches on one processor (GOMAXPROCS=1: its map is one goroutine, and a second only woke threads); the goroutines run on %d.", l.want, base.Human(l.sieve), runtime.GOMAXPROCS(0))

	vs := r.Table("procs_vs_goroutines", "processes against goroutines",
		report.Col("chunk", "chunk", report.Int),
		report.Col("ratio", "procs/gor", report.Ratio),
		report.Col("cpu_ratio", "cpu procs/gor", report.Ratio),
		report.Col("overhead_per_task_ns", "overhead/task*", report.Micros),
	)
	for _, pg := range l.pairs() {
		vs.Row(chunkOf(pg[0]), ratio(pg[0].Elapsed, pg[1].Elapsed), ratio(pg[0].CPU, pg[1].CPU), overhead(pg[0], pg[1]))
	}
	vs.Notef("* (procs time - goroutines time) x workers / tasks: what a task cost a worker beyond the work itself. At chunk size 1 that is a message round trip; larger chunks share it among their tasks. CPU is user+system time of ipcplay and its workers over the same window as TIME (the cost table's USER + KERNEL): on a busy machine it is the steadier comparison.")

	if first := l.runs[0]; first.Mode == Procs && first.Startups.N > 0 {
		st := r.Table("startup", "start-up, apart from the steady state",
			report.Col("workers", "workers", report.Int),
			report.Col("startup_median_ns", "spawn to ready", report.Millis),
			report.Opt("startup_max_ns", "max", report.Millis, 2),
			report.Col("bare_median_ns", "bare re-exec", report.Millis),
			report.Col("vs_bare", "vs bare", report.Ratio),
		)
		var bare, vs any
		if first.Bare.N > 0 {
			bare, vs = first.Bare.Median, float64(first.Startups.Median)/float64(first.Bare.Median)
		}
		st.Row(first.Workers, first.Startups.Median, first.Startups.Max, bare, vs)
		st.Notef("SPAWN TO READY is a pool worker from Start to its hello; BARE RE-EXEC is this binary started as a child that exits at once, Start to reaped, measured in the same run. TIME above leaves start-up out.")
	}

	ct := r.CostTable("task")
	for _, run := range l.runs {
		ct.Add(fmt.Sprintf("%s, chunk %d", run.Mode, chunkOf(run)), run.Cost.Per(run.Tasks))
	}
	dominant := ct.Finish()
	l.switches(r)

	var events int
	for _, run := range l.runs {
		events += len(run.Events)
	}
	if events > 0 {
		d := r.Table("deaths", "worker deaths",
			report.Col("chunk", "chunk", report.Int),
			report.Col("slot", "slot", report.ID),
			report.Col("pid", "pid", report.ID),
			report.Col("exit", "exit", report.Text),
			report.Col("resent_count", "re-sent", report.Int),
			report.Opt("resent", "tasks", report.Text, 1),
			report.Col("replaced_by", "replaced by", report.ID),
		)
		for _, run := range l.runs {
			for _, ev := range run.Events {
				exit := fmt.Sprint(ev.ExitCode)
				if ev.Signal != "" {
					exit = ev.Signal
				}
				d.Row(chunkOf(run), ev.Slot, ev.PID, exit, len(ev.Resent), taskList(ev.Resent), ev.Replacement)
			}
		}
	}
	if l.sweep {
		p := r.Plot("overhead", "pool overhead per task against chunk size",
			report.Axis{Label: "chunk size", Unit: "tasks", Log: true},
			report.Axis{Label: "overhead per task", Unit: "µs", Log: true})
		line := p.Line("procs - goroutines", false)
		for _, pg := range l.pairs() {
			line.Add(float64(chunkOf(pg[0])), float64(overhead(pg[0], pg[1]))/1e3)
		}
	}
	l.verdict(r)
	if dominant != "" {
		r.Verdictf("the pool, per task: %s", dominant)
	}
	if k := l.kernelVerdict(); k != "" {
		r.Verdictf("%s", k)
	}
	return r
}

// kernelCost is what a pair's processes spent in the kernel beyond the
// goroutines, per task, and the context switches that came with it.
type kernelCost struct {
	extraNS  float64 // kernel ns per task, processes minus goroutines
	procsCS  float64 // context switches per 1,000 tasks
	gorCS    float64
	procsNap float64 // nanosleep calls (sysmon wakes) per 1,000 tasks
	gorNap   float64
	perCS    float64 // extraNS over the extra switches per task, in µs; 0 if none
}

func kernelOf(pg [2]Result) kernelCost {
	p, g := pg[0].Cost.Per(pg[0].Tasks), pg[1].Cost.Per(pg[1].Tasks)
	k := kernelCost{
		extraNS:  p.SysNS - g.SysNS,
		procsCS:  1000 * (p.VolCS + p.InvolCS),
		gorCS:    1000 * (g.VolCS + g.InvolCS),
		procsNap: 1000 * p.ByName["nanosleep"],
		gorNap:   1000 * g.ByName["nanosleep"],
	}
	if d := (k.procsCS - k.gorCS) / 1000; d > 0 && k.extraNS > 0 {
		k.perCS = k.extraNS / d / 1000
	}
	return k
}

// switches adds the table that sets the processes' extra kernel time
// beside their extra context switches.
func (l *lab) switches(r *report.Report) {
	t := r.Table("switches", "kernel time against context switches",
		report.Col("chunk", "chunk", report.Int),
		report.Col("extra_kernel_ns", "extra kernel/task", report.Nanos),
		report.Col("procs_cs_per_1k", "cs/1k tasks procs", report.Float),
		report.Col("goroutines_cs_per_1k", "gor", report.Float),
		report.Opt("procs_nanosleep_per_1k", "sysmon/1k procs", report.Float, 1),
		report.Opt("goroutines_nanosleep_per_1k", "gor", report.Float, 1),
		report.Col("per_extra_cs_ns", "per extra cs", report.Micros),
	)
	for _, pg := range l.pairs() {
		k := kernelOf(pg)
		var per any
		if k.perCS > 0 {
			per = time.Duration(k.perCS*1000 + 0.5)
		}
		t.Row(chunkOf(pg[0]), time.Duration(k.extraNS+0.5), k.procsCS, k.gorCS, k.procsNap, k.gorNap, per)
	}
	t.Notef("EXTRA KERNEL/TASK is the processes' kernel CPU per task minus the goroutines'. CS are context switches (voluntary and involuntary) of every process involved, per 1,000 tasks. SYSMON counts nanosleep calls, nearly all of them the Go runtime's sysmon thread, one per process, which wakes every 20 µs for a while each time its process wakes from idle. PER EXTRA CS is the extra kernel time over the extra switches: what each would cost if they were all of it (a switch between processes, with the wake-up that causes it, costs several µs on a virtual machine, where `perf bench sched pipe` measures the floor).")
}

// kernelVerdict says what the processes' extra kernel time came with, at
// the chunk size where the ratio was best, when the cost was counted.
func (l *lab) kernelVerdict() string {
	if !l.verified() {
		return ""
	}
	best := l.pairs()[0]
	for _, pg := range l.pairs()[1:] {
		if float64(pg[0].Elapsed)/float64(max(pg[1].Elapsed, 1)) < float64(best[0].Elapsed)/float64(max(best[1].Elapsed, 1)) {
			best = pg
		}
	}
	if best[0].Cost.UserNS+best[0].Cost.SysNS == 0 || best[1].Cost.UserNS+best[1].Cost.SysNS == 0 {
		return "" // no cost counted (no perf events here)
	}
	k := kernelOf(best)
	// The verdict opens with the same words whatever the figures, so that
	// a reader (and the lab sheets' check) finds it in every run.
	switch {
	case k.extraNS <= 0:
		return fmt.Sprintf("the processes' extra kernel time was none: %.0f ns per task under the goroutines', with %.1f context switches per 1,000 tasks against %.1f",
			-k.extraNS, k.procsCS, k.gorCS)
	case k.perCS == 0:
		return fmt.Sprintf("the processes' extra kernel time, %.0f ns per task, came without extra context switches (%.1f per 1,000 tasks against %.1f for goroutines)",
			k.extraNS, k.procsCS, k.gorCS)
	}
	s := fmt.Sprintf("the processes' extra kernel time, %.0f ns per task, comes with %.1f context switches per 1,000 tasks against %.1f for goroutines (%.0f µs per extra switch)",
		k.extraNS, k.procsCS, k.gorCS, k.perCS)
	if k.procsNap > 0 {
		s += fmt.Sprintf("; %.1f per 1,000 tasks are the Go runtime's sysmon threads waking (%.1f with goroutines): one per process, polling every 20 µs after each wake-up of its process", k.procsNap, k.gorNap)
	}
	return s
}

// taskList shows a list of task indexes as ranges, shortened.
func taskList(idx []int) string {
	if len(idx) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", idx[i], idx[j]))
		} else {
			parts = append(parts, fmt.Sprint(idx[i]))
		}
		i = j + 1
	}
	s := fmt.Sprintf("%d: %s", len(idx), strings.Join(parts, ","))
	if len(s) > 30 {
		s = s[:27] + "..."
	}
	return s
}

func (l *lab) verdict(r *report.Report) {
	if !l.verified() {
		r.Verdictf("WRONG: a run's sum of factors differs from the sieve's")
		return
	}
	pairs := l.pairs()
	best := pairs[0]
	for _, pg := range pairs[1:] {
		if float64(pg[0].Elapsed)/float64(max(pg[1].Elapsed, 1)) < float64(best[0].Elapsed)/float64(max(best[1].Elapsed, 1)) {
			best = pg
		}
	}
	rt := float64(best[0].Elapsed) / float64(max(best[1].Elapsed, 1))
	s := fmt.Sprintf("every sum verified; the pool took %.2fx the goroutines' time (%.2fx their CPU) at chunk size %d",
		rt, float64(best[0].CPU)/float64(max(best[1].CPU, 1)), chunkOf(best[0]))
	if len(pairs) > 1 {
		first, last := pairs[0], pairs[len(pairs)-1]
		s += fmt.Sprintf(", and the overhead per task fell from %s at chunk size %d to %s at %d",
			base.Human(overhead(first[0], first[1])), first[0].ChunkSize,
			base.Human(overhead(last[0], last[1])), last[0].ChunkSize)
	}
	if l.kill {
		var deaths, resent int
		for _, run := range l.runs {
			deaths += len(run.Events)
			for _, ev := range run.Events {
				resent += len(ev.Resent)
			}
		}
		s += fmt.Sprintf("; %d SIGKILLed worker(s) were replaced and their %d in-flight tasks re-sent, with the same sum", deaths, resent)
	}
	r.Verdictf("%s", s)
}
