package factor

import (
	"context"
	"errors"
	"fmt"
	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/procs/cost"
	"iter"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
	"ipcplay/procs/pool"
)

// WorkerRole is the child role of the pool's workers. Register it with
// WorkerMain in main and TestMain.
const WorkerRole = "ipcplay-factor-worker"

// WorkerMain is the entry point of WorkerRole: a pool worker that factorizes.
func WorkerMain(ctx context.Context, args []string) error {
	// The pool encodes each result before it runs the next task, so one
	// buffer serves every task: a worker process allocates nothing per n,
	// where a goroutine must hand over a list of its own.
	var buf []uint64
	return pool.WorkerMain(pool.Typed(func(_ context.Context, n uint64) ([]uint64, error) {
		buf = Factorize(n, buf[:0])
		return buf, nil
	}))(ctx, args)
}

// Mode says where the tasks run.
type Mode = base.Mode

const (
	Procs      = base.Procs      // a procs/pool of worker processes
	Goroutines = base.Goroutines // goroutines fed chunks over a channel
)

// DefaultUpTo is N when none is given: the classic lab's million.
const DefaultUpTo = 1_000_000

// Config describes one run.
type Config struct {
	UpTo    uint64 // factorize every n in 1..UpTo
	Workers int    // processes or goroutines
	// ChunkSize is the number of tasks per message. Zero lets the pool
	// choose (see procs/pool: chunks a worker runs in about 10 ms, at most
	// N / (8 x workers)); goroutines then get chunks of GoroutineChunk.
	ChunkSize int
	// SpawnBaseline, if not zero, is how many bare re-execs of this binary
	// (procs.BareRole) the Procs run times before it starts the pool, so
	// that the workers' start-up can be compared with the floor in the
	// same run (Result.Bare against Result.Startups).
	SpawnBaseline int
	// KillWorker SIGKILLs one worker holding tasks once half the tasks are
	// done (Procs mode only), to show the pool recovering. A run of a single
	// chunk has no such moment, and kills nothing.
	KillWorker bool
	// Progress, if set, is called from the running goroutine about every
	// percent with the number of tasks done.
	Progress func(done, total uint64)
}

// Result is what a run measured.
type Result struct {
	Mode      Mode
	Workers   int
	ChunkSize int
	Tasks     uint64        // how many n were factorized
	Chunks    uint64        // how many messages carried them
	Setup     time.Duration // starting the workers, until every one is serving
	Elapsed   time.Duration // from the first task sent to the last result: the steady state
	// Cost is what the processes involved spent over the steady state:
	// system calls, context switches, user and kernel CPU (procs/cost).
	Cost cost.Sample
	// Startups are the pool workers' times from spawn to ready (Procs).
	Startups procs.SpawnStats
	// Bare is the time of a bare re-exec of this binary that exits at
	// once, measured in the same run when Config.SpawnBaseline is set.
	Bare procs.SpawnStats
	// SumOfFactors is the sum of every prime factor of every n, with
	// multiplicity.
	SumOfFactors uint64
	// CPU is the processor time of the steady state, user and system, in
	// this process and the workers: Cost's, when it was measured (a live
	// worker's in 10 ms ticks), else getrusage's over the whole run, which
	// counts the workers' start-up too (it was a third of the processes'
	// CPU at 1,000,000 tasks). Unlike Elapsed, it hardly changes when
	// other programs compete for the machine.
	CPU time.Duration
	// Killed is the pid SIGKILLed by KillWorker, 0 if none.
	Killed int
	// Events are the pool's worker deaths.
	Events []pool.Event
}

// TasksPerSecond is Tasks over Elapsed.
func (r Result) TasksPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Tasks) / r.Elapsed.Seconds()
}

// Run factorizes 1..cfg.UpTo in mode and sums the factors.
func Run(ctx context.Context, mode Mode, cfg Config) (Result, error) {
	if cfg.Workers < 1 {
		return Result{}, fmt.Errorf("factor: %d workers: need at least 1", cfg.Workers)
	}
	if cfg.ChunkSize < 0 {
		return Result{}, fmt.Errorf("factor: chunk size %d: need at least 0", cfg.ChunkSize)
	}
	res := Result{Mode: mode, Workers: cfg.Workers, ChunkSize: cfg.ChunkSize, Tasks: cfg.UpTo}
	cpu0 := cpuTime()
	var err error
	switch mode {
	case Procs:
		err = runProcs(ctx, cfg, &res)
	case Goroutines:
		err = runGoroutines(ctx, cfg, &res)
	default:
		err = fmt.Errorf("factor: unknown mode %q", mode)
	}
	res.CPU = cpuTime() - cpu0
	if c := res.Cost.UserNS + res.Cost.SysNS; c > 0 {
		res.CPU = time.Duration(c)
	}
	return res, err
}

// cpuTime is the user and system time of this process and of its reaped
// children so far.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if unix.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// GoroutineChunk is the chunk size of the goroutines when Config.ChunkSize
// is zero: N / (8 x workers), the most the pool chooses, between 1 and
// 10,000. Goroutines pay no message per chunk, so beyond a few hundred
// tasks their speed hardly depends on it.
func GoroutineChunk(upto uint64, workers int) int {
	return int(max(1, min(upto/uint64(8*workers), 10_000)))
}

// numbers yields 1..upto.
func numbers(upto uint64) iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		for n := uint64(1); n <= upto; n++ {
			if !yield(n) {
				return
			}
		}
	}
}

// progress calls cfg.Progress about every percent.
type progress struct {
	cfg  *Config
	done uint64
	next uint64
}

func (p *progress) add(n uint64) {
	p.done += n
	if p.cfg.Progress != nil && p.done >= p.next {
		p.cfg.Progress(p.done, p.cfg.UpTo)
		p.next = p.done + max(p.cfg.UpTo/100, 1)
	}
}

func runProcs(ctx context.Context, cfg Config, res *Result) error {
	if cfg.SpawnBaseline > 0 {
		bare, err := procs.MeasureSpawn(ctx, cfg.SpawnBaseline)
		if err != nil {
			return fmt.Errorf("factor: %w", err)
		}
		res.Bare = bare
	}
	start := time.Now()
	p, err := pool.New(ctx, pool.Config{Role: WorkerRole, Workers: cfg.Workers})
	if err != nil {
		return err
	}
	defer p.Close()
	// Start-up apart: the map below measures the steady state only.
	if err := p.Ready(ctx); err != nil {
		return fmt.Errorf("factor: start workers: %w", err)
	}
	res.Setup = time.Since(start)
	res.Startups = procs.NewSpawnStats(p.Startups())
	chunks0 := p.Chunks()
	// This process's side of the pool is one goroutine that dispatches,
	// and a reader and a writer per worker, which wait on sockets. With a
	// second processor, each answer made the runtime wake a second thread
	// that found nothing to do, or moved the dispatcher to the other CPU,
	// away from a worker: a third more context switches in this process
	// and a fifth more of its CPU time (measured at load 6, 4 pairs). The
	// workers have every processor; the goroutines' run gets them back.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// This process is counted with inherit: a worker started to replace a
	// killed one is counted too.
	ctr, err := cost.StartWith(costOptions, append(p.PIDs(), os.Getpid())...)
	if err != nil {
		return fmt.Errorf("factor: %w", err)
	}
	defer ctr.Close()

	prog := progress{cfg: &cfg}
	var sum uint64
	var killErr error
	start = time.Now()
	opts := pool.MapOptions{ChunkSize: cfg.ChunkSize, Len: int(cfg.UpTo)}
	err = pool.MapUnorderedWith(ctx, p, numbers(cfg.UpTo), opts, func(i int, fs []uint64, err error) error {
		if err != nil {
			return err
		}
		for _, f := range fs {
			sum += f
		}
		prog.add(1)
		if cfg.KillWorker && res.Killed == 0 && prog.done >= cfg.UpTo/2 {
			busy := p.Busy()
			if len(busy) == 0 {
				return nil // try again at the next result
			}
			res.Killed = busy[0]
			if err := syscall.Kill(res.Killed, syscall.SIGKILL); err != nil {
				killErr = fmt.Errorf("factor: kill worker %d: %w", res.Killed, err)
			}
		}
		return nil
	})
	res.Elapsed = time.Since(start)
	if s, cerr := ctr.Stop(); cerr == nil {
		res.Cost = s
	}
	res.SumOfFactors = sum
	res.Events = p.Events()
	res.Chunks = uint64(p.Chunks() - chunks0)
	return errors.Join(err, killErr, p.Close())
}

// costOptions also counts nanosleep(2), which in a Go program is mostly
// the runtime's sysmon thread (one per process) waking to look around:
// every 20 µs for a while after its process wakes from idle, backing off
// to every 10 ms when nothing happens. Each of its wakes is two context
// switches, and on a busy machine it preempts the work.
var costOptions = cost.Options{ByName: []string{"nanosleep"}}

// span is a chunk of the goroutines' input: n in [lo, hi).
type span struct{ lo, hi uint64 }

// spanResult is what a goroutine sends back for a span, as a worker process
// does: the factor list of every n.
type spanResult struct {
	factors [][]uint64
}

func runGoroutines(ctx context.Context, cfg Config, res *Result) error {
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = GoroutineChunk(cfg.UpTo, cfg.Workers)
	}
	res.Chunks = (cfg.UpTo + uint64(cfg.ChunkSize) - 1) / uint64(cfg.ChunkSize)
	ctr, cerr := cost.StartWith(costOptions, os.Getpid())
	if cerr != nil {
		return fmt.Errorf("factor: %w", cerr)
	}
	defer func() {
		if s, err := ctr.Stop(); err == nil {
			res.Cost = s
		}
		ctr.Close()
	}()
	start := time.Now()
	spans := make(chan span, cfg.Workers*pool.DefaultInFlight)
	results := make(chan spanResult, cfg.Workers*pool.DefaultInFlight)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() {
			for s := range spans {
				r := spanResult{factors: make([][]uint64, 0, s.hi-s.lo)}
				for n := s.lo; n < s.hi; n++ {
					r.factors = append(r.factors, Factorize(n, nil))
				}
				select {
				case results <- r:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Go(func() {
		defer close(spans)
		for lo := uint64(1); lo <= cfg.UpTo; lo += uint64(cfg.ChunkSize) {
			s := span{lo, min(lo+uint64(cfg.ChunkSize), cfg.UpTo+1)}
			select {
			case spans <- s:
			case <-ctx.Done():
				return
			}
		}
	})
	res.Setup = time.Since(start)
	start = time.Now()
	prog := progress{cfg: &cfg}
	var sum uint64
	var err error
	for got := uint64(0); got < res.Chunks; got++ {
		select {
		case r := <-results:
			for _, fs := range r.factors {
				for _, f := range fs {
					sum += f
				}
			}
			prog.add(uint64(len(r.factors)))
		case <-ctx.Done():
			err = fmt.Errorf("factor: %w", context.Cause(ctx))
			got = res.Chunks
		}
	}
	res.Elapsed = time.Since(start)
	res.SumOfFactors = sum
	cancel()
	wg.Wait()
	return err
}
