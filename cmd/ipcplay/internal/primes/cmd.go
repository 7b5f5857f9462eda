package primes

import (
	"context"
	"fmt"
	"math/big"
	"runtime"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/procs"
)

// RegisterRoles registers the lab's child roles with procs.
func RegisterRoles() { procs.Register(WorkerRole, WorkerMain) }

// Command returns the primes command.
func Command() *base.Command {
	cmd := &base.Command{
		UsageLine: "primes [flags] [NUMBER...]",
		Short:     "trial division on processes sharing an mmap'd stop flag, against goroutines",
		Long: `Decides whether each NUMBER is prime by trial division, the classic lab: divisors below 21 are tried first, then the odd candidates from 21 to isqrt(n) are split into one range per worker. Workers publish their progress in shared memory and look at a shared stop flag every K candidates; the one that finds a divisor sets the flag, and the others stop.

In procs mode the workers are child processes mapping one memfd region; in goroutines mode they are goroutines sharing Go memory. Both run the same worker code. With no NUMBER, the labeled numbers of the classic lab are checked (testdata/primes.txt).

Examples:
  ipcplay primes --procs 4
  ipcplay primes --mode procs 1000000016000000063
  ipcplay primes --no-flag 91 --json`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	workers := base.ProcsFlag(f, 4)
	mode := base.ModeFlag(f, base.Both)
	every := base.IntFlag(f, "check-every", DefaultCheckEvery, 1, 1<<30, "candidates a worker tries between looks at the stop flag")
	noFlag := f.Bool("no-flag", false, "ignore the stop flag: every worker scans its whole range")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		cfg := Config{Workers: *workers, CheckEvery: *every, NoFlag: *noFlag}
		return run(ctx, env, out, cfg, *mode, args)
	}
	return cmd
}

func run(ctx context.Context, env *base.Env, out *base.Output, cfg Config, mode base.Mode, args []string) error {
	var inputs []Labeled
	if len(args) == 0 {
		var err error
		if inputs, err = ClassicSet(); err != nil {
			return err
		}
	}
	for _, s := range args {
		n, err := ParseNumber(s)
		if err != nil {
			return base.Usagef("%v", err)
		}
		inputs = append(inputs, Labeled{Label: s, N: n})
	}
	modes := mode.Modes()
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	l := &lab{cfg: cfg, modes: modes}

	// One set of workers per mode for every number, as the classic lab
	// keeps one pool: start-up is paid once and reported apart.
	checkers := make([]*Checker, len(modes))
	defer func() {
		for _, c := range checkers {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i, m := range modes {
		prog.Set(0, 0, "primes: starting %d %s workers", cfg.Workers, m)
		c, err := NewChecker(ctx, m, cfg)
		if err != nil {
			return err
		}
		checkers[i] = c
		l.startup = append(l.startup, c.Startup)
	}
	if len(modes) > 0 && modes[0] == Procs {
		prog.Set(0, 0, "primes: timing a bare re-exec of this binary")
		if bare, err := procs.MeasureSpawn(ctx, 5); err == nil {
			l.bare = bare.Median
		}
	}
	for i, in := range inputs {
		for k, c := range checkers {
			c.cfg.Progress = func(p Progress) {
				prog.Set(float64(i)+float64(p.Checked)/float64(max(p.Total, 1)), float64(len(inputs)),
					"primes: %s %s", in.Label, modes[k])
			}
			res, err := c.Check(ctx, in.N)
			if err != nil {
				return err
			}
			l.rows = append(l.rows, row{Label: in.Label, Result: res})
		}
		l.lessons = append(l.lessons, probablyPrime(in))
	}
	for i, c := range checkers {
		start := time.Now()
		err := c.Close()
		checkers[i] = nil
		l.teardown = append(l.teardown, time.Since(start))
		if err != nil {
			return err
		}
	}
	prog.Done()
	return report.Write(env, out, l.report())
}

type row struct {
	Label string
	Result
}

type lesson struct {
	Labeled
	prime   bool
	elapsed time.Duration
}

// probablyPrime asks math/big, which runs Miller-Rabin and Baillie-PSW
// tests: exact for every 64-bit number.
func probablyPrime(in Labeled) lesson {
	start := time.Now()
	p := new(big.Int).SetUint64(in.N).ProbablyPrime(20)
	return lesson{Labeled: in, prime: p, elapsed: time.Since(start)}
}

type lab struct {
	cfg      Config
	modes    []Mode
	startup  []time.Duration // starting each mode's workers, once
	teardown []time.Duration // stopping them, once
	bare     time.Duration   // a bare re-exec of this binary that exits at once
	rows     []row
	lessons  []lesson
}

func (l *lab) report() *report.Report {
	flag := fmt.Sprintf("stop flag checked every %d candidates", l.cfg.CheckEvery)
	if l.cfg.NoFlag {
		flag = "stop flag ignored (--no-flag)"
	}
	r := report.New("primes", fmt.Sprintf("primes: %d workers, %s", l.cfg.Workers, flag))
	r.Config["procs"] = l.cfg.Workers
	r.Config["check_every"] = l.cfg.CheckEvery
	r.Config["no_flag"] = l.cfg.NoFlag
	r.Config["modes"] = l.modes

	t := r.Table("results", "results",
		report.Col("label", "label", report.Text),
		report.Opt("n", "n", report.BigInt, 5),
		report.Col("mode", "mode", report.Text),
		report.Col("prime", "prime", report.Bool),
		report.Opt("factor", "factor*", report.BigInt, 6),
		report.Opt("found_by", "found by", report.Text, 7),
		report.Col("scan_ns", "scan", report.Millis),
		report.Opt("checked", "checked", report.Int, 3),
		report.Opt("of_full_scan", "of full", report.Percent, 2),
		report.Opt("stop_latency_ns", "stop", report.Millis, 1),
		report.Opt("handout_ns", "hand-out", report.Micros, 4),
		report.Opt("collect_ns", "collect", report.Micros, 8),
	)
	w := r.Table("workers", "per worker",
		report.Col("label", "label", report.Text),
		report.Col("mode", "mode", report.Text),
		report.Col("worker", "worker", report.ID),
		report.Opt("pid", "pid", report.ID, 2),
		report.Opt("range_lo", "from", report.BigInt, 3),
		report.Opt("range_hi", "to", report.BigInt, 3),
		report.Col("checked", "checked", report.Int),
		report.Opt("of_range", "of range", report.Percent, 1),
		report.Col("outcome", "outcome", report.Text),
		report.Opt("duration_ns", "ended after", report.Millis, 4),
	)
	w.Detail = true
	for _, row := range l.rows {
		var factor, foundBy, scan, stop, setup, teardown any
		if !row.Prime && row.N >= 2 {
			factor, foundBy = row.Factor, "serial phase"
			if row.FoundBy >= 0 {
				foundBy = fmt.Sprintf("worker %d", row.FoundBy)
			}
		}
		if len(row.Workers) > 0 {
			scan, setup, teardown = row.Compute, row.Setup, row.Teardown
			if row.FlagSet {
				stop = row.StopLatency
			}
		}
		t.Row(row.Label, row.N, string(row.Mode), row.Prime, factor, foundBy, scan,
			int64(row.Checked), percent(row.Checked, row.FullScan), stop, setup, teardown)
		for _, wk := range row.Workers {
			var pid any
			if wk.PID != 0 {
				pid = wk.PID
			}
			w.Row(row.Label, string(row.Mode), wk.Index, pid, wk.Range.Lo, wk.Range.Hi,
				int64(wk.Checked), percent(wk.Checked, wk.Range.Len()), wk.Outcome.String(), wk.Duration)
		}
	}
	t.Notef("* any divisor found, not necessarily the smallest. SCAN is the parallel phase; STOP is from the flag being set to the last worker stopping; HAND-OUT resets the shared board and sends each worker its range; COLLECT is from the last worker's end until the parent has every report.")

	st := r.Table("startup", "start-up, once for all numbers",
		report.Col("mode", "mode", report.Text),
		report.Col("workers", "workers", report.Int),
		report.Col("startup_ns", "start-up", report.Millis),
		report.Col("per_worker_ns", "per worker", report.Millis),
		report.Opt("bare_reexec_ns", "bare re-exec", report.Millis, 1),
		report.Opt("vs_bare", "vs bare", report.Ratio, 2),
		report.Opt("teardown_ns", "teardown", report.Millis, 3),
	)
	for i, m := range l.modes {
		per := l.startup[i] / time.Duration(l.cfg.Workers)
		var bare, vs any
		if m == Procs && l.bare > 0 {
			bare, vs = l.bare, float64(per)/float64(l.bare)
		}
		var td any
		if i < len(l.teardown) {
			td = l.teardown[i]
		}
		st.Row(string(m), l.cfg.Workers, l.startup[i], per, bare, vs, td)
	}
	if l.bare > 0 {
		st.Notef("BARE RE-EXEC is this binary started as a child that exits at once, measured in the same run: the least a process can cost.")
	}

	if len(l.modes) == 2 {
		vs := r.Table("procs_vs_goroutines", "processes against goroutines",
			report.Col("label", "label", report.Text),
			report.Col("procs_ns", "procs", report.Millis),
			report.Col("goroutines_ns", "goroutines", report.Millis),
			report.Col("ratio", "procs/gor", report.Ratio),
		)
		for i := 0; i+1 < len(l.rows); i += 2 {
			p, g := l.rows[i], l.rows[i+1]
			if len(p.Workers) == 0 {
				continue
			}
			vs.Row(p.Label, p.Compute, g.Compute, ratio(p.Compute, g.Compute))
		}
	}

	ls := r.Table("probably_prime", "the lesson every systems course ends on: ask a better algorithm",
		report.Col("label", "label", report.Text),
		report.Col("prime", "prime", report.Bool),
		report.Col("probably_prime_ns", "probably prime", report.Micros),
		report.Col("trial_division_ns", "trial division", report.Millis),
		report.Col("ratio", "trial/PP", report.Ratio),
	)
	for i, ln := range l.lessons {
		td := l.trialTime(i)
		ls.Row(ln.Label, ln.prime, ln.elapsed, td, ratio(td, ln.elapsed))
		if l.answer(i) != ln.prime {
			r.Warnf("%s: math/big's ProbablyPrime and trial division disagree", ln.Label)
		}
	}
	ls.Notef("math/big's ProbablyPrime (Miller-Rabin plus Baillie-PSW) is exact for every 64-bit number; trial division is worth its cost only when a small factor ends it early.")
	l.verdict(r)
	return r
}

// trialTime is the fastest trial division of lesson i's number, serial
// phase, setup and teardown included.
func (l *lab) trialTime(i int) time.Duration {
	var best time.Duration
	for _, row := range l.rows[i*len(l.modes) : (i+1)*len(l.modes)] {
		if d := row.Elapsed; best == 0 || d < best {
			best = d
		}
	}
	return best
}

func (l *lab) answer(i int) bool { return l.rows[i*len(l.modes)].Prime }

// verdict says what the numbers mean.
func (l *lab) verdict(r *report.Report) {
	if cpus := runtime.NumCPU(); l.cfg.Workers > cpus {
		r.Warnf("%d workers on %d CPUs: workers take turns on the CPUs, so the scan measures the scheduler's time slicing as much as the work; goroutines and processes are sliced differently (the Go scheduler against the kernel's), which can make either side look faster", l.cfg.Workers, cpus)
	}
	var checked, full uint64
	var total [2]time.Duration
	n := 0
	for i, row := range l.rows {
		if len(row.Workers) == 0 {
			continue
		}
		k := i % len(l.modes)
		total[k] += row.Compute
		checked += row.Checked
		full += row.FullScan
		if k == 0 {
			n++
		}
	}
	if n == 0 {
		r.Verdictf("the serial phase decided every number: no worker had anything to do")
		return
	}
	numbers := "1 number"
	if n > 1 {
		numbers = fmt.Sprintf("%d numbers", n)
	}
	if len(l.modes) == 2 {
		rt := float64(total[0]) / float64(max(total[1], 1))
		what := "as fast as"
		switch {
		case rt < 0.95:
			what = "faster than"
		case rt > 1.10:
			what = "slower than"
		}
		r.Verdictf("once started, processes scanned %s goroutines (%.2fx the time over %s): sharing costs one atomic load per %d candidates",
			what, rt, numbers, l.cfg.CheckEvery)
	} else {
		r.Verdictf("%s workers scanned %s in %s; run with --mode both to compare them with %s",
			l.modes[0], numbers, base.Human(total[0]), other(l.modes[0]))
	}
	l.startupVerdict(r)
	if l.cfg.NoFlag {
		r.Verdictf("with --no-flag every worker scanned its whole range: %s candidates, the full scan, where the stop flag lets a divisor end the scan early", base.Count(int64(checked)))
	} else if checked < full {
		r.Verdictf("the stop flag saved %.1f%% of the candidates a full scan tries (%s of %s); --no-flag shows the scan without it",
			100*(1-float64(checked)/float64(full)), base.Count(int64(full-checked)), base.Count(int64(full)))
	} else if l.flagSet() {
		r.Verdictf("the stop flag saved nothing this time: every divisor was found after the other workers had finished their ranges (where a divisor sits in its range decides how much the flag can save)")
	}
}

// startupVerdict says what starting the workers cost, once.
func (l *lab) startupVerdict(r *report.Report) {
	if len(l.modes) == 0 || l.modes[0] != Procs {
		return
	}
	msg := fmt.Sprintf("starting %d worker processes cost %s, once for every number", l.cfg.Workers, base.Human(l.startup[0]))
	if l.bare > 0 {
		msg += fmt.Sprintf(" (%s each: %.2fx a bare re-exec of this binary, %s)",
			base.Human(l.startup[0]/time.Duration(l.cfg.Workers)), float64(l.startup[0])/float64(l.cfg.Workers)/float64(l.bare), base.Human(l.bare))
	}
	if len(l.modes) == 2 {
		msg += fmt.Sprintf(", against %s for goroutines", base.Human(l.startup[1]))
	}
	r.Verdictf("%s", msg)
}

// flagSet reports whether a worker set the stop flag in any check.
func (l *lab) flagSet() bool {
	for _, row := range l.rows {
		if row.FlagSet {
			return true
		}
	}
	return false
}

func other(m Mode) Mode {
	if m == Procs {
		return Goroutines
	}
	return Procs
}

func percent(part, whole uint64) any {
	if whole == 0 {
		return nil
	}
	return 100 * float64(part) / float64(whole)
}

func ratio(a, b time.Duration) any {
	if b <= 0 {
		return nil
	}
	return float64(a) / float64(b)
}
