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
// mode. Errors report a worker that failed or a cancelled ctx.
func Check(ctx context.Context, n uint64, mode Mode, cfg Config) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, fmt.Errorf("check %d: %w", n, err)
	}
	start := time.Now()
	res, err := check(ctx, n, mode, cfg)
	res.Elapsed = time.Since(start)
	return res, err
}

func check(ctx context.Context, n uint64, mode Mode, cfg Config) (Result, error) {
	res := Result{N: n, Mode: mode, FoundBy: -1}
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

	var r runner
	switch mode {
	case Procs:
		r = &procRunner{}
	case Goroutines:
		r = &goRunner{}
	default:
		return res, fmt.Errorf("check %d: unknown mode %q", n, mode)
	}
	ranges := Split(rest.Lo, rest.Hi, cfg.Workers)
	jobs := make([]job, cfg.Workers)
	for w, rg := range ranges {
		jobs[w] = job{n: n, r: rg, every: uint64(cfg.CheckEvery), useFlag: !cfg.NoFlag, index: w}
	}
	run, err := runCheck(ctx, r, jobs, &cfg, mode)
	if err != nil {
		return res, fmt.Errorf("check %d in %s mode: %w", n, mode, err)
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

// A runner starts a check's workers in one mode. start makes every worker
// ready to scan and returns once all are; release lets them scan; wait
// returns when all have ended. close releases what start took, and may be
// called after any of them.
type runner interface {
	start(ctx context.Context, b *board, jobs []job) error
	mem(size int) ([]byte, error)
	release() error
	wait() error
	pids() []int
	close() error
}

type runResult struct {
	setup, compute, teardown time.Duration
	stopLatency              time.Duration
	factor                   uint64
	finder                   int
	workers                  []Worker
}

func runCheck(ctx context.Context, r runner, jobs []job, cfg *Config, mode Mode) (_ runResult, err error) {
	defer func() {
		if cerr := r.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	setupStart := monotonic()
	mem, err := r.mem(boardSize(len(jobs)))
	if err != nil {
		return runResult{}, err
	}
	b, err := newBoard(mem, len(jobs))
	if err != nil {
		return runResult{}, err
	}
	if err := r.start(ctx, b, jobs); err != nil {
		return runResult{}, err
	}
	goAt := monotonic()
	if err := r.release(); err != nil {
		b.abort.Set()
		return runResult{}, err
	}

	// Wait for the workers, reporting progress, and abort them if ctx
	// ends first.
	done := make(chan error, 1)
	go func() { done <- r.wait() }()
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
	reaped := monotonic()
	if werr != nil {
		return runResult{}, werr
	}
	if err := ctx.Err(); err != nil {
		return runResult{}, context.Cause(ctx)
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
	out.teardown = time.Duration(reaped - lastEnd)
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
