package benchlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/procs/cost"
)

// perfLoops is the number of round trips perf bench sched pipe runs, and
// the least number ours times in each turn.
const perfLoops = 20_000

// perfTurns is how many times ours runs, each between two runs of perf:
// on a shared machine one pair of runs minutes apart says little.
const perfTurns = 3

// perfCheck is our pipe round trip run in turns with perf bench sched pipe,
// both placed the same way.
type perfCheck struct {
	Skip      string          // why it did not run
	Command   string          // the perf command line
	Placement string          // how both were placed, in words
	Perf      []time.Duration // perf's mean round trip: perfTurns+1 runs, around ours
	Ours      []*Cell         // our pipe cell of each turn, at perf's message size
	// PerfCost is what one of perf's round trips cost, from one more run
	// under perf stat; CostSkip says why it is missing.
	PerfCost *perfCost
	CostSkip string
}

// perfCost is perf bench sched pipe's cost per round trip, both processes
// together, as perf stat counted it.
type perfCost struct {
	Switches   float64 // context switches
	Migrations float64
	CPU        time.Duration // task-clock
}

// checkPerf runs the comparison; a machine without perf gets a reason.
func checkPerf(ctx context.Context, cfg Config) *perfCheck {
	pc := &perfCheck{}
	path, err := exec.LookPath("perf")
	if err != nil {
		pc.Skip = "perf is not installed (linux-perf / linux-tools)"
		return pc
	}
	bench := []string{path, "bench", "sched", "pipe", "-l", strconv.Itoa(perfLoops)}
	var prefix []string
	pl := cfg.Placement
	// moveTo is the CPU perf's forked worker is moved to once it exists
	// (two-cpus: taskset alone would let both processes share either CPU).
	moveTo := -1
	switch pl.Name {
	case "same-cpu":
		prefix = []string{"taskset", "-c", strconv.Itoa(pl.Self)}
		pc.Placement = fmt.Sprintf("same-cpu: both processes of each on CPU %d", pl.Self)
	case "two-cpus":
		prefix = []string{"taskset", "-c", strconv.Itoa(pl.Self)}
		moveTo = pl.Other
		pc.Placement = fmt.Sprintf("two-cpus: perf's parent and our measuring thread on CPU %d, perf's forked child (moved there as soon as it exists) and our echo child on CPU %d", pl.Self, pl.Other)
	default:
		pc.Placement = "unpinned: the scheduler places both"
	}
	pc.Command = strings.Join(append(slices.Clone(prefix), bench...), " ")
	runPerf := func() error {
		out, err := runMoving(ctx, append(slices.Clone(prefix), bench...), 1, moveTo)
		if err != nil {
			return fmt.Errorf("%s: %w", pc.Command, err)
		}
		d, err := parsePerfBench(out)
		if err != nil {
			return fmt.Errorf("%s: %w", pc.Command, err)
		}
		pc.Perf = append(pc.Perf, d)
		return nil
	}
	pipe, _ := lookupMech("pipe")
	for turn := range perfTurns {
		if err := runPerf(); err != nil {
			pc.Skip = err.Error()
			return pc
		}
		c, err := measure(ctx, pipe, 4, pl, Options{Budget: cfg.Budget, MinIters: perfLoops, Cost: turn == 0, Phase: phaseLat})
		if err != nil {
			pc.Skip = err.Error()
			return pc
		}
		pc.Ours = append(pc.Ours, c)
	}
	if err := runPerf(); err != nil {
		pc.Skip = err.Error()
		return pc
	}
	// One more run, under perf stat, for what a round trip costs: apart
	// from the timed runs, as our own counting is.
	stat := append(slices.Clone(prefix), path, "stat", "-x,", "-e", "task-clock,context-switches,cpu-migrations", "--")
	out, err := runMoving(ctx, append(stat, bench...), 2, moveTo)
	if err == nil {
		pc.PerfCost, err = parsePerfStat(out, perfLoops)
	}
	if err != nil {
		pc.CostSkip = err.Error()
	}
	return pc
}

// runMoving runs args and returns its combined output. With cpu >= 0, the
// first process depth generations below the one started (perf's forked
// worker) is moved to cpu as soon as it appears.
func runMoving(ctx context.Context, args []string, depth, cpu int) ([]byte, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var moveErr error
	if cpu >= 0 {
		moveErr = moveDescendant(cmd.Process.Pid, depth, cpu)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, lastLine([]byte(out.String())))
	}
	if moveErr != nil {
		return nil, moveErr
	}
	return []byte(out.String()), nil
}

// moveDescendant waits (up to 2 s) for pid's first descendant depth
// generations down and pins it to cpu.
func moveDescendant(pid, depth, cpu int) error {
	deadline := time.Now().Add(2 * time.Second)
	for ; depth > 0; depth-- {
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
			if err != nil {
				return fmt.Errorf("find perf's worker process: %w", err)
			}
			if f := strings.Fields(string(b)); len(f) > 0 {
				pid, _ = strconv.Atoi(f[0])
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("find perf's worker process: process %d started none in 2 s", pid)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(pid, &set); err != nil {
		return fmt.Errorf("move perf's worker %d to CPU %d: %w", pid, cpu, os.NewSyscallError("sched_setaffinity", err))
	}
	return nil
}

// parsePerfBench reads the mean round trip from perf bench sched pipe's
// output ("     14.621340 usecs/op").
func parsePerfBench(out []byte) (time.Duration, error) {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == "usecs/op" {
			us, err := strconv.ParseFloat(f[0], 64)
			if err != nil || us <= 0 {
				return 0, fmt.Errorf("usecs/op %q: not a positive number", f[0])
			}
			return time.Duration(us * 1e3), nil
		}
	}
	return 0, fmt.Errorf("no usecs/op in its output: %s", lastLine(out))
}

// parsePerfStat reads perf stat -x, output (value,unit,event,...) for
// task-clock (msec), context-switches and cpu-migrations, per round trip.
func parsePerfStat(out []byte, loops int) (*perfCost, error) {
	pc := &perfCost{}
	seen := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue // "<not counted>", "<not supported>", or not a stat line
		}
		per := v / float64(loops)
		switch f[2] {
		case "task-clock":
			if f[1] != "msec" {
				return nil, fmt.Errorf("perf stat: task-clock in %q, want msec", f[1])
			}
			pc.CPU = time.Duration(per * 1e6)
		case "context-switches":
			pc.Switches = per
		case "cpu-migrations":
			pc.Migrations = per
		default:
			continue
		}
		seen++
	}
	if seen < 3 {
		return nil, fmt.Errorf("perf stat counted %d of task-clock, context-switches, cpu-migrations: %s", seen, lastLine(out))
	}
	return pc, nil
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// perfMean is the mean of perf's runs on either side of our turn i.
func (pc *perfCheck) perfMean(i int) time.Duration {
	return (pc.Perf[i] + pc.Perf[i+1]) / 2
}

func (pc *perfCheck) report(r *report.Report) {
	if pc.Skip != "" || len(pc.Ours) == 0 || len(pc.Perf) != len(pc.Ours)+1 {
		r.Notef("--check-perf skipped: %s", pc.Skip)
		return
	}
	t := r.Table("check_perf", "pipe round trip against perf bench sched pipe (4 bytes), in turns",
		report.Col("run", "run", report.Text),
		report.Col("mean_ns", "mean", report.Micros),
		report.Opt("p50_ns", "p50", report.Micros, 1),
		report.Opt("span_ns", "span/n", report.Micros, 2),
		report.Col("vs_perf", "vs perf", report.Ratio),
	)
	ratios := make([]float64, len(pc.Ours))
	for i, c := range pc.Ours {
		t.Row(fmt.Sprintf("perf %d", i+1), pc.Perf[i], nil, nil, nil)
		ratios[i] = float64(c.Lat.Mean()) / float64(pc.perfMean(i))
		var span any
		if c.Iters > 0 {
			span = c.Span / time.Duration(c.Iters)
		}
		t.Row(fmt.Sprintf("ipcplay %d", i+1), c.Lat.Mean(), c.Lat.Quantile(0.5), span, ratios[i])
	}
	t.Row(fmt.Sprintf("perf %d", len(pc.Perf)), pc.Perf[len(pc.Perf)-1], nil, nil, nil)
	t.Notef("Placement: %s.", pc.Placement)
	t.Notef("perf's figure is its total time over %s round trips, a mean; ours is the mean of at least %s timed round trips (p50 beside it), set against the mean of the perf runs before and after it. SPAN/N is our timed phase's wall time over its round trips, perf's way, which also counts what our measuring side does between round trips (the histogram, the clock, a yield every %v). Command: %s.", base.Count(perfLoops), base.Count(perfLoops), yieldEvery, pc.Command)
	if pc.Ours[0].Placement == "unpinned" {
		t.Notef("Unpinned, each pair settles where the scheduler puts it: two single-threaded processes woken by a pipe usually end up sharing one CPU, and a pair on two CPUs pays a cross-CPU wake-up per message. --placement same-cpu compares like with like.")
	}
	s := slices.Clone(ratios)
	slices.Sort(s)
	med := s[len(s)/2]
	r.Verdictf("our pipe round trip is %.2fx perf bench sched pipe's, mean against mean (median of %d turns, %.2f-%.2fx; %s)", med, len(s), s[0], s[len(s)-1], pc.Ours[0].Placement)
	pc.reportCost(r)
}

// reportCost sets what a round trip cost perf's two processes against what
// it cost ours: counts, which waiting for a busy CPU does not inflate.
func (pc *perfCheck) reportCost(r *report.Report) {
	oc := pc.Ours[0].Cost
	if pc.PerfCost == nil || oc == nil {
		why := pc.CostSkip
		if oc == nil {
			why = "our counters are not available here"
		}
		r.Notef("--check-perf: no cost per round trip: %s", why)
		return
	}
	t := r.Table("check_perf_cost", "what one round trip costs both processes, perf against ours",
		report.Col("run", "run", report.Text),
		report.Col("switches", "switches", report.Float),
		report.Col("cpu_ns", "CPU", report.Micros),
		report.Opt("syscalls", "syscalls", report.Float, 1),
	)
	p := pc.PerfCost
	t.Row("perf", p.Switches, p.CPU, nil)
	var sys any
	if oc.SyscallMethod == cost.MethodTracepoint {
		sys = oc.Syscalls
	}
	ours := time.Duration(oc.UserNS + oc.SysNS)
	t.Row("ipcplay", oc.VolCS+oc.InvolCS, ours, sys)
	if p.CPU > 0 {
		r.Verdictf("a round trip cost our two processes %.2fx the CPU time of perf's (%s against %s) and %.2f context switches against %.2f: counts, which a busy machine inflates far less than wall time", float64(ours)/float64(p.CPU), base.Human(ours), base.Human(p.CPU), oc.VolCS+oc.InvolCS, p.Switches)
	}
	t.Notef("perf's from one more run under 'perf stat -e task-clock,context-switches,cpu-migrations' (%.4f migrations a round trip), its fork and start-up included; ours from the cost phase of turn 1 (%s round trips counted apart from the timed ones), both processes and all their threads, CPU time from /proc in 10 ms ticks. A pipe round trip needs 2 switches and 4 system calls (a write and a read each side).", p.Migrations, base.Count(int64(oc.Messages)))
}
