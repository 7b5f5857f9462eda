package primes

import (
	"context"
	"errors"
	"fmt"
	"ipcplay/cmd/ipcplay/internal/base"
	"time"
)

// Mode says what the workers of a check are: ipcplay's one Mode.
type Mode = base.Mode

const (
	Procs      = base.Procs      // child processes sharing a memfd region
	Goroutines = base.Goroutines // goroutines sharing Go memory
)

// DefaultCheckEvery is how many candidates a worker tries between two looks
// at the stop flag, as in the classic lab.
const DefaultCheckEvery = 1000

// MaxWorkers bounds Config.Workers: more workers than this is a mistake, not
// an experiment.
const MaxWorkers = 1024

// Config is how a check runs.
type Config struct {
	Workers    int  // how many workers share the parallel phase, 1..MaxWorkers
	CheckEvery int  // candidates between looks at the flag, >= 1
	NoFlag     bool // keep scanning after another worker found a divisor

	// Progress, if set, is called from the goroutine that called Check
	// about every ProgressInterval while the workers run.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

// Progress is a snapshot of a running check, read from the shared counters.
type Progress struct {
	Mode      Mode
	N         uint64
	Checked   uint64   // candidates tried so far by all workers
	Total     uint64   // candidates in all the workers' ranges
	PerWorker []uint64 // candidates tried so far by each worker
}

func (c *Config) validate() error {
	if c.Workers < 1 || c.Workers > MaxWorkers {
		return fmt.Errorf("workers = %d, want 1..%d", c.Workers, MaxWorkers)
	}
	if c.CheckEvery < 1 {
		return fmt.Errorf("check every = %d, want at least 1", c.CheckEvery)
	}
	return nil
}

// Worker is what one worker did.
type Worker struct {
	Index    int
	PID      int // the child's pid in Procs mode, 0 for a goroutine
	Range    Range
	Checked  uint64
	Outcome  Outcome
	Factor   uint64        // the divisor it found, if Outcome is Found
	Duration time.Duration // from the start signal to its end
}

// StoppedEarly reports whether the worker left part of its range untried
// because it was told to stop.
func (w Worker) StoppedEarly() bool { return w.Outcome == Stopped || w.Outcome == Aborted }

// Result is the outcome of one check.
type Result struct {
	N       uint64
	Mode    Mode
	Workers []Worker // empty when the serial phase decided

	Prime  bool
	Factor uint64 // a divisor of n, not necessarily the smallest; 0 if prime
	// FoundBy is the worker that found Factor, or -1 when the serial phase
	// did (or n < 4).
	FoundBy int

	// Checked is how many candidates were tried in all; FullScan is how
	// many a scan without early exit tries.
	Checked       uint64
	FullScan      uint64
	SerialChecked uint64

	// Setup is the cost of starting the workers and mapping their memory,
	// until every worker is ready. Compute runs from the start signal to
	// the last worker's end. Teardown is from there until every worker has
	// been reaped (procs) or joined (goroutines).
	Setup, Compute, Teardown time.Duration

	// Elapsed is the wall time of the whole check: serial phase, setup,
	// scan and teardown.
	Elapsed time.Duration

	// StopLatency is the time from the stop flag being set to the last
	// worker stopping. It is meaningful only when FlagSet is true.
	StopLatency time.Duration
	FlagSet     bool
}

// Check decides whether n is prime, running the parallel phase in the given
// mode on workers started for this check alone. Errors report a worker that
// failed or a cancelled ctx. A lab that checks many numbers keeps one
// Checker instead.
func Check(ctx context.Context, n uint64, mode Mode, cfg Config) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, fmt.Errorf("check %d: %w", n, err)
	}
	start := time.Now()
	c, err := NewChecker(ctx, mode, cfg)
	if err != nil {
		return Result{}, err
	}
	res, err := c.Check(ctx, n)
	res.Setup = c.Startup
	teardown := time.Now()
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	res.Teardown = time.Since(teardown)
	res.Elapsed = time.Since(start)
	return res, err
}

// A Checker keeps one set of workers in one mode for many checks, as the
// classic lab keeps one pool for all its numbers: the workers are started
// once, and each check hands each of them one range. It is not safe for
// concurrent use.
type Checker struct {
	mode   Mode
	cfg    Config
	r      runner
	b      *board
	broken error

	// Startup is how long starting the workers and mapping their memory
	// took, until every worker was ready.
	Startup time.Duration
}

// NewChecker starts cfg.Workers workers in mode, and returns once every
// one is ready.
func NewChecker(ctx context.Context, mode Mode, cfg Config) (*Checker, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("start %s workers: %w", mode, err)
	}
	c := &Checker{mode: mode, cfg: cfg}
	switch mode {
	case Procs:
		c.r = &procRunner{}
	case Goroutines:
		c.r = &goRunner{}
	default:
		return nil, fmt.Errorf("start workers: unknown mode %q", mode)
	}
	start := time.Now()
	mem, err := c.r.mem(boardSize(cfg.Workers))
	if err == nil {
		c.b, err = newBoard(mem, cfg.Workers)
	}
	if err == nil {
		err = c.r.start(ctx, c.b, cfg.Workers)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start %s workers: %w", mode, err), c.r.close())
	}
	c.Startup = time.Since(start)
	return c, nil
}

// Pids returns the workers' process ids (none for goroutines).
func (c *Checker) Pids() []int { return c.r.pids() }

// Close stops the workers and reaps them.
func (c *Checker) Close() error { return c.r.close() }

// Check decides whether n is prime on the checker's workers. Result.Setup
// is what handing out the check cost (resetting the shared board and
// sending each worker its range), not the workers' start-up.
func (c *Checker) Check(ctx context.Context, n uint64) (Result, error) {
	start := time.Now()
	res, err := c.check(ctx, n)
	res.Elapsed = time.Since(start)
	return res, err
}

func (c *Checker) check(ctx context.Context, n uint64) (Result, error) {
	res := Result{N: n, Mode: c.mode, FoundBy: -1}
	root := Isqrt(n)
	factor, tried := serial(n, root)
	rest := parallelRange(root)
	res.SerialChecked = tried
	res.Checked = tried
	res.FullScan = serialFullScan(n, root) + rest.Len()
	switch {
	case n < 2:
		return res, nil // neither prime nor composite: reported as not prime
	case factor != 0:
		res.Factor = factor
		return res, nil
	case rest.Len() == 0:
		res.Prime = true
		return res, nil
	}
	if c.broken != nil {
		return res, fmt.Errorf("check %d in %s mode: workers lost earlier: %w", n, c.mode, c.broken)
	}
	cfg := c.cfg
	ranges := Split(rest.Lo, rest.Hi, cfg.Workers)
	jobs := make([]job, cfg.Workers)
	for w, rg := range ranges {
		jobs[w] = job{n: n, r: rg, every: uint64(cfg.CheckEvery), useFlag: !cfg.NoFlag, index: w}
	}
	run, err := runCheck(ctx, c.r, c.b, jobs, &cfg, c.mode)
	if err != nil {
		c.broken = err
		return res, fmt.Errorf("check %d in %s mode: %w", n, c.mode, err)
	}
	res.Setup, res.Compute, res.Teardown = run.setup, run.compute, run.teardown
	res.Workers = run.workers
	for _, w := range run.workers {
		res.Checked += w.Checked
	}
	if run.factor != 0 {
		res.Factor = run.factor
		res.FoundBy = run.finder
		res.FlagSet = true
		res.StopLatency = run.stopLatency
	} else {
		res.Prime = true
	}
	return res, nil
}

// serialFullScan is how many divisors the serial phase tries when none
// divides n.
func serialFullScan(n, root uint64) uint64 {
	if n < 4 {
		return 0
	}
	t := uint64(1)
	for i := uint64(3); i < SerialCutoff && i <= root; i += 2 {
		t++
	}
	return t
}

type runResult struct {
	setup, compute, teardown time.Duration
	stopLatency              time.Duration
	factor                   uint64
	finder                   int
	workers                  []Worker
}

// runCheck runs one round of jobs on r's workers over board b.
func runCheck(ctx context.Context, r runner, b *board, jobs []job, cfg *Config, mode Mode) (runResult, error) {
	setupStart := monotonic()
	b.reset()
	goAt := monotonic()

	// Wait for the workers, reporting progress, and abort them if ctx
	// ends first.
	done := make(chan error, 1)
	go func() { done <- r.run(ctx, jobs) }()
	var tick <-chan time.Time
	if cfg.Progress != nil {
		iv := cfg.ProgressInterval
		if iv <= 0 {
			iv = 100 * time.Millisecond
		}
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	var total uint64
	for _, j := range jobs {
		total += j.r.Len()
	}
	ctxDone := ctx.Done()
	var werr error
wait:
	for {
		select {
		case werr = <-done:
			break wait
		case <-ctxDone:
			b.abort.Set()
			ctxDone = nil
		case <-tick:
			cfg.Progress(snapshot(b, jobs, mode, total))
		}
	}
	reported := monotonic()
	if err := ctx.Err(); err != nil {
		// Workers that ctx ended (processes are killed with it) report
		// errors of their own; the cause is ctx's.
		return runResult{}, context.Cause(ctx)
	}
	if werr != nil {
		return runResult{}, werr
	}

	out := runResult{finder: -1, workers: make([]Worker, len(jobs))}
	pids := r.pids()
	lastEnd := goAt
	for w, j := range jobs {
		end := b.vals.Load(b.slot(w, slotEnd))
		lastEnd = max(lastEnd, end)
		wk := Worker{
			Index:    w,
			Range:    j.r,
			Checked:  uint64(b.vals.Load(b.slot(w, slotChecked))),
			Outcome:  Outcome(b.vals.Load(b.slot(w, slotOutcome))),
			Factor:   uint64(b.vals.Load(b.slot(w, slotFactor))),
			Duration: time.Duration(end - goAt),
		}
		if w < len(pids) {
			wk.PID = pids[w]
		}
		out.workers[w] = wk
	}
	out.setup = time.Duration(goAt - setupStart)
	out.compute = time.Duration(lastEnd - goAt)
	out.teardown = time.Duration(reported - lastEnd)
	if b.stop.IsSet() {
		out.factor = uint64(b.vals.Load(valFactor))
		out.finder = int(b.vals.Load(valFinder))
		out.stopLatency = time.Duration(lastEnd - b.vals.Load(valSetAt))
	}
	return out, nil
}

func snapshot(b *board, jobs []job, mode Mode, total uint64) Progress {
	p := Progress{Mode: mode, N: jobs[0].n, Total: total, PerWorker: make([]uint64, len(jobs))}
	for w := range jobs {
		c := uint64(b.vals.Load(b.slot(w, slotChecked)))
		p.PerWorker[w] = c
		p.Checked += c
	}
	return p
}
