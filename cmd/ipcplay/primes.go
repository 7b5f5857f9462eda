package main

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"ipcplay/cmd/ipcplay/internal/primes"
)

var primesCommand = &command{
	name:  "primes",
	short: "parallel trial division on processes sharing an mmap'd stop flag, against goroutines",
	run:   runPrimes,
}

const primesUsage = "primes [--procs N] [--mode procs|goroutines|both] [--check-every K] [--no-flag] [--json] [NUMBER...]"

const primesLong = `
Decides whether each NUMBER is prime by trial division, the classic lab:
divisors below 21 are tried first, then the odd candidates from 21 to
isqrt(n) are split into one range per worker. Workers publish their progress
in shared memory and look at a shared stop flag every K candidates; the one
that finds a divisor sets the flag, and the others stop.

In procs mode the workers are child processes mapping one memfd region; in
goroutines mode they are goroutines sharing Go memory. Both run the same
worker code. With no NUMBER, the labeled numbers of the classic lab are
checked (testdata/primes.txt).`

func runPrimes(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "primes", primesUsage, primesLong)
	workers := fs.Int("procs", 4, "number of workers (processes or goroutines), 1.."+fmt.Sprint(primes.MaxWorkers))
	mode := fs.String("mode", "both", "where workers run: procs, goroutines, or both")
	every := fs.Int("check-every", primes.DefaultCheckEvery, "candidates a worker tries between looks at the stop flag")
	noFlag := fs.Bool("no-flag", false, "ignore the stop flag: every worker scans its whole range")
	asJSON := fs.Bool("json", false, "print one JSON document instead of tables")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if *workers < 1 || *workers > primes.MaxWorkers {
		return usagef("--procs %d: want 1..%d", *workers, primes.MaxWorkers)
	}
	if *every < 1 {
		return usagef("--check-every %d: want at least 1", *every)
	}
	var modes []primes.Mode
	switch *mode {
	case "both":
		modes = []primes.Mode{primes.Procs, primes.Goroutines}
	case "procs":
		modes = []primes.Mode{primes.Procs}
	case "goroutines":
		modes = []primes.Mode{primes.Goroutines}
	default:
		return usagef("--mode %q: want procs, goroutines or both", *mode)
	}
	var inputs []primes.Labeled
	if len(pos) == 0 {
		inputs, err = primes.ClassicSet()
		if err != nil {
			return err
		}
	}
	for _, s := range pos {
		n, err := primes.ParseNumber(s)
		if err != nil {
			return usagef("%v", err)
		}
		inputs = append(inputs, primes.Labeled{Label: s, N: n})
	}

	prog := env.newProgress(!*asJSON)
	defer prog.done()
	cfg := primes.Config{
		Workers:    *workers,
		CheckEvery: *every,
		NoFlag:     *noFlag,
	}
	rep := primesReport{cfg: cfg, modes: modes, system: thisSystem()}
	for _, in := range inputs {
		for _, m := range modes {
			cfg.Progress = func(p primes.Progress) {
				prog.set("primes: %s %s: %s of %s candidates (%.0f%%)", in.Label, p.Mode,
					count(p.Checked), count(p.Total), 100*float64(p.Checked)/float64(max(p.Total, 1)))
			}
			res, err := primes.Check(ctx, in.N, m, cfg)
			if err != nil {
				return err
			}
			rep.rows = append(rep.rows, primesRow{Label: in.Label, Result: res})
		}
		prog.set("primes: %s: math/big ProbablyPrime", in.Label)
		rep.lessons = append(rep.lessons, probablyPrime(in))
	}
	prog.done()
	if *asJSON {
		return writeJSON(env.stdout, rep.json())
	}
	return rep.render(env)
}

type primesRow struct {
	Label string
	primes.Result
}

type lesson struct {
	primes.Labeled
	prime   bool
	elapsed time.Duration
}

// probablyPrime asks math/big, which runs Miller-Rabin and Baillie-PSW
// tests: exact for every 64-bit number.
func probablyPrime(in primes.Labeled) lesson {
	start := time.Now()
	p := new(big.Int).SetUint64(in.N).ProbablyPrime(20)
	return lesson{Labeled: in, prime: p, elapsed: time.Since(start)}
}

type primesReport struct {
	cfg     primes.Config
	modes   []primes.Mode
	system  system
	rows    []primesRow
	lessons []lesson
}

func (r *primesReport) render(env *env) error {
	w := env.stdout
	flag := fmt.Sprintf("stop flag checked every %d candidates", r.cfg.CheckEvery)
	if r.cfg.NoFlag {
		flag = "stop flag ignored (--no-flag)"
	}
	fmt.Fprintf(w, "primes: %d workers, %s (%s)\n\n", r.cfg.Workers, flag, r.system)

	t := newTable(w, "LABEL", "N", "MODE", "ANSWER", "FACTOR*", "FOUND BY", "SECONDS", "CHECKED", "OF FULL SCAN", "STOP LATENCY ms", "SETUP ms", "TEARDOWN ms")
	for _, row := range r.rows {
		answer, factor, by := "prime", "-", "-"
		if !row.Prime {
			answer = "not prime"
			if row.N >= 2 {
				answer = "composite"
				factor = fmt.Sprint(row.Factor)
			}
			by = "serial phase"
			if row.FoundBy >= 0 {
				by = fmt.Sprintf("worker %d", row.FoundBy)
			}
		}
		stop, setup, teardown := "-", "-", "-"
		if len(row.Workers) > 0 {
			setup, teardown = millis(row.Setup), millis(row.Teardown)
			if row.FlagSet {
				stop = millis(row.StopLatency)
			}
		}
		t.row(row.Label, fmt.Sprint(row.N), string(row.Mode), answer, factor, by,
			seconds(row.Compute), count(row.Checked), percent(row.Checked, row.FullScan), stop, setup, teardown)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "* any divisor found, not necessarily the smallest. SECONDS is the parallel scan;")
	fmt.Fprintln(w, "  SETUP is starting the workers and mapping their memory, TEARDOWN reaping them.")

	fmt.Fprintln(w, "\nper worker:")
	t = newTable(w, "LABEL", "MODE", "WORKER", "PID", "RANGE", "CHECKED", "OF RANGE", "OUTCOME", "ENDED AFTER ms")
	any := false
	for _, row := range r.rows {
		for _, wk := range row.Workers {
			any = true
			pid := "-"
			if wk.PID != 0 {
				pid = fmt.Sprint(wk.PID)
			}
			rng := "empty"
			if wk.Range.Len() > 0 {
				rng = fmt.Sprintf("%d..%d", wk.Range.Lo, wk.Range.Hi)
			}
			t.row(row.Label, string(row.Mode), fmt.Sprint(wk.Index), pid, rng, count(wk.Checked),
				percent(wk.Checked, wk.Range.Len()), wk.Outcome.String(), millis(wk.Duration))
		}
	}
	if any {
		if err := t.flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(w, "  (none: every number was decided by the serial phase)")
	}

	if len(r.modes) == 2 {
		fmt.Fprintln(w, "\nprocesses against goroutines:")
		t = newTable(w, "LABEL", "PROCS s", "GOROUTINES s", "PROCS/GOROUTINES", "SETUP PROCS ms", "SETUP GOROUTINES ms")
		for i := 0; i+1 < len(r.rows); i += 2 {
			p, g := r.rows[i], r.rows[i+1]
			if len(p.Workers) == 0 {
				continue
			}
			t.row(p.Label, seconds(p.Compute), seconds(g.Compute), ratio(p.Compute, g.Compute), millis(p.Setup), millis(g.Setup))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if v := r.verdict(); v != "" {
		fmt.Fprintf(w, "\n%s\n", v)
	}

	fmt.Fprintln(w, "\nthe lesson every systems course ends on: ask a better algorithm.")
	t = newTable(w, "LABEL", "ProbablyPrime", "ms", "TRIAL DIVISION ms", "TRIAL DIVISION / ProbablyPrime")
	for i, l := range r.lessons {
		td := r.trialTime(i)
		ans := "prime"
		if !l.prime {
			ans = "not prime"
		}
		agree := ""
		if r.answer(i) != l.prime {
			agree = "  (DISAGREES with trial division)"
		}
		t.row(l.Label, ans+agree, millis(l.elapsed), millis(td), ratio(td, l.elapsed))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "math/big's ProbablyPrime (Miller-Rabin plus Baillie-PSW) is exact for every 64-bit number;")
	fmt.Fprintln(w, "trial division is worth its cost only when a small factor ends it early.")
	return nil
}

// trialTime is the fastest trial division of lesson i's number, serial phase,
// setup and teardown included.
func (r *primesReport) trialTime(i int) time.Duration {
	var best time.Duration
	for _, row := range r.rows[i*len(r.modes) : (i+1)*len(r.modes)] {
		if d := row.Elapsed; best == 0 || d < best {
			best = d
		}
	}
	return best
}

func (r *primesReport) answer(i int) bool { return r.rows[i*len(r.modes)].Prime }

// verdict is the one line that says what the numbers mean.
func (r *primesReport) verdict() string {
	if len(r.modes) != 2 {
		return ""
	}
	var procs, gor, setupP, setupG time.Duration
	var n int
	for i := 0; i+1 < len(r.rows); i += 2 {
		p, g := r.rows[i], r.rows[i+1]
		if len(p.Workers) == 0 {
			continue
		}
		n++
		procs += p.Compute
		gor += g.Compute
		setupP += p.Setup
		setupG += g.Setup
	}
	if n == 0 {
		return "verdict: the serial phase decided every number; no worker had anything to do."
	}
	rt := float64(procs) / float64(max(gor, 1))
	var what string
	switch {
	case rt < 0.95:
		what = "faster than"
	case rt <= 1.10:
		what = "as fast as"
	default:
		what = "slower than"
	}
	return fmt.Sprintf("verdict: once started, processes scanned %s goroutines (%.2fx the time over %d numbers): "+
		"sharing costs one atomic load per %d candidates. Starting them cost %s ms per number against %s ms for goroutines.",
		what, rt, n, r.cfg.CheckEvery, millis(setupP/time.Duration(n)), millis(setupG/time.Duration(n)))
}

func percent(part, whole uint64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

// primesJSON is the --json document.
type primesJSON struct {
	SchemaVersion int                `json:"schema_version"`
	Procs         int                `json:"procs"`
	CheckEvery    int                `json:"check_every"`
	NoFlag        bool               `json:"no_flag"`
	Modes         []string           `json:"modes"`
	System        system             `json:"system"`
	Results       []primesResultJSON `json:"results"`
	ProbablyPrime []lessonJSON       `json:"probably_prime"`
}

type primesResultJSON struct {
	Label    string  `json:"label"`
	N        uint64  `json:"n"`
	Mode     string  `json:"mode"`
	Prime    bool    `json:"prime"`
	Factor   uint64  `json:"factor"`
	FoundBy  string  `json:"found_by"` // "worker N", "serial", or "" when prime
	Seconds  float64 `json:"seconds"`
	Checked  uint64  `json:"checked"`
	FullScan uint64  `json:"full_scan"`
	// StopLatencySeconds is null when no worker set the stop flag.
	StopLatencySeconds *float64     `json:"stop_latency_seconds"`
	ElapsedSeconds     float64      `json:"elapsed_seconds"`
	SetupSeconds       float64      `json:"setup_seconds"`
	TeardownSeconds    float64      `json:"teardown_seconds"`
	Workers            []workerJSON `json:"workers"`
}

type workerJSON struct {
	Index        int     `json:"index"`
	PID          int     `json:"pid,omitempty"`
	RangeLo      uint64  `json:"range_lo"`
	RangeHi      uint64  `json:"range_hi"`
	Candidates   uint64  `json:"candidates"`
	Checked      uint64  `json:"checked"`
	StoppedEarly bool    `json:"stopped_early"`
	Outcome      string  `json:"outcome"`
	Seconds      float64 `json:"seconds"`
}

type lessonJSON struct {
	Label                string  `json:"label"`
	N                    uint64  `json:"n"`
	Prime                bool    `json:"prime"`
	Seconds              float64 `json:"seconds"`
	TrialDivisionSeconds float64 `json:"trial_division_seconds"`
}

func (r *primesReport) json() primesJSON {
	doc := primesJSON{
		SchemaVersion: 1,
		Procs:         r.cfg.Workers,
		CheckEvery:    r.cfg.CheckEvery,
		NoFlag:        r.cfg.NoFlag,
		System:        r.system,
		Results:       []primesResultJSON{},
		ProbablyPrime: []lessonJSON{},
	}
	for _, m := range r.modes {
		doc.Modes = append(doc.Modes, string(m))
	}
	for _, row := range r.rows {
		res := primesResultJSON{
			Label: row.Label, N: row.N, Mode: string(row.Mode), Prime: row.Prime, Factor: row.Factor,
			Seconds: row.Compute.Seconds(), Checked: row.Checked, FullScan: row.FullScan,
			ElapsedSeconds: row.Elapsed.Seconds(), SetupSeconds: row.Setup.Seconds(),
			TeardownSeconds: row.Teardown.Seconds(),
			Workers:         []workerJSON{},
		}
		if !row.Prime && row.N >= 2 {
			res.FoundBy = "serial"
			if row.FoundBy >= 0 {
				res.FoundBy = fmt.Sprintf("worker %d", row.FoundBy)
			}
		}
		if row.FlagSet {
			s := row.StopLatency.Seconds()
			res.StopLatencySeconds = &s
		}
		for _, wk := range row.Workers {
			res.Workers = append(res.Workers, workerJSON{
				Index: wk.Index, PID: wk.PID, RangeLo: wk.Range.Lo, RangeHi: wk.Range.Hi,
				Candidates: wk.Range.Len(), Checked: wk.Checked, StoppedEarly: wk.StoppedEarly(),
				Outcome: wk.Outcome.String(), Seconds: wk.Duration.Seconds(),
			})
		}
		doc.Results = append(doc.Results, res)
	}
	for i, l := range r.lessons {
		doc.ProbablyPrime = append(doc.ProbablyPrime, lessonJSON{
			Label: l.Label, N: l.N, Prime: l.prime, Seconds: l.elapsed.Seconds(),
			TrialDivisionSeconds: r.trialTime(i).Seconds(),
		})
	}
	return doc
}
