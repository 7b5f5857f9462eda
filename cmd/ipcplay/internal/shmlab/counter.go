package shmlab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/procs"
	"ipcplay/shm"
)

// Sync is how the workers of a Counter run keep their increments apart.
type Sync string

// The kinds of synchronization a Counter run can use.
const (
	None   Sync = "none"   // load, add one, store: two workers can both store the same value
	Atomic Sync = "atomic" // one atomic add
	Lock   Sync = "mutex"  // load, add one, store under a mutex
)

// Syncs lists every Sync, in the order the lab runs them.
var Syncs = []Sync{None, Atomic, Lock}

// ParseSync parses a --sync value; "all" gives every Sync.
func ParseSync(s string) ([]Sync, error) {
	if s == "all" {
		return Syncs, nil
	}
	for _, k := range Syncs {
		if string(k) == s {
			return []Sync{k}, nil
		}
	}
	return nil, fmt.Errorf("sync %q: want none, atomic, mutex or all", s)
}

// Mode is where the workers run: ipcplay's one Mode.
type Mode = base.Mode

// The modes a Counter run can use.
const (
	Procs      = base.Procs      // child processes mapping one memfd, shm's atomics and Mutex
	Goroutines = base.Goroutines // goroutines, sync/atomic and sync.Mutex
)

// MaxWorkers bounds CounterConfig.Workers.
const MaxWorkers = 64

// MaxIncrements bounds CounterConfig.Increments: 64 workers of this many
// take minutes under a contended mutex, not hours.
const MaxIncrements = 10_000_000

// checkEvery is how many increments a worker does between looks at its
// context, so that a cancelled run stops within a few milliseconds.
const checkEvery = 1 << 16

// CounterConfig describes one Counter run.
type CounterConfig struct {
	Workers    int
	Increments int // per worker
	Sync       Sync
	Mode       Mode
}

// CounterResult is what one Counter run measured. Done is the work the
// workers did, each counting its own increments on the side; Lost is
// Done-Final: the updates that two workers overwrote. Only None loses any;
// a run of None that lost none was lucky, not correct.
type CounterResult struct {
	CounterConfig
	Expected int64 // Workers x Increments, from the configuration
	Done     int64 // increments the workers report having done
	Final    int64 // the shared counter at the end
	Lost     int64
	Elapsed  time.Duration // from the start signal until every worker is done
	PIDs     []int         // the children, in Procs mode
}

// CounterRole is the child role of a Counter run in Procs mode.
const CounterRole = "ipcplay-shm-counter"

// The counter region: the counter (a shm.Value), the mutex that guards it
// under Lock, the semaphores and event that start and end the run, and one
// word per worker where it counts its own increments.
const (
	counterSize = 4096
	offCounter  = 0
	offMutex    = 64
	offReady    = 80  // Semaphore: each child posts once mapped
	offGo       = 88  // Event: the parent sets it to start everyone
	offDone     = 96  // Semaphore: each child posts when done
	offWork     = 128 // [MaxWorkers]int64: increments each worker did
)

// Counter runs cfg once and reports the count it reached.
func Counter(ctx context.Context, cfg CounterConfig) (CounterResult, error) {
	if cfg.Workers < 1 || cfg.Workers > MaxWorkers {
		return CounterResult{}, fmt.Errorf("counter: %d workers, want 1..%d", cfg.Workers, MaxWorkers)
	}
	if cfg.Increments < 0 || cfg.Increments > MaxIncrements {
		return CounterResult{}, fmt.Errorf("counter: %d increments, want 0..%d", cfg.Increments, MaxIncrements)
	}
	if _, err := ParseSync(string(cfg.Sync)); err != nil {
		return CounterResult{}, fmt.Errorf("counter: %w", err)
	}
	res := CounterResult{CounterConfig: cfg, Expected: int64(cfg.Workers) * int64(cfg.Increments)}
	var err error
	switch cfg.Mode {
	case Procs:
		err = countProcs(ctx, &res)
	case Goroutines:
		err = countGoroutines(ctx, &res)
	default:
		err = fmt.Errorf("counter: mode %q: want procs or goroutines", cfg.Mode)
	}
	res.Lost = res.Done - res.Final
	return res, err
}

// increment calls inc, one increment, n times, looking at ctx every
// checkEvery calls, and returns how many increments it did.
func increment(ctx context.Context, n int, inc func() error) (int64, error) {
	done := 0
	for done < n {
		if err := ctx.Err(); err != nil {
			return int64(done), err
		}
		for range min(checkEvery, n-done) {
			if err := inc(); err != nil {
				return int64(done), err
			}
			done++
		}
	}
	return int64(done), nil
}

func countGoroutines(ctx context.Context, res *CounterResult) error {
	var (
		n     atomic.Int64 // atomic even for None: the lost updates are the lesson, not a data race
		plain int64        // guarded by mu
		mu    sync.Mutex
		wg    sync.WaitGroup
		work  = make([]int64, res.Workers)
		errs  = make([]error, res.Workers)
	)
	inc := map[Sync]func() error{
		None:   func() error { n.Store(n.Load() + 1); return nil },
		Atomic: func() error { n.Add(1); return nil },
		Lock:   func() error { mu.Lock(); plain++; mu.Unlock(); return nil },
	}[res.Sync]
	start := make(chan struct{})
	for i := range res.Workers {
		wg.Go(func() {
			<-start
			work[i], errs[i] = increment(ctx, res.Increments, inc)
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.Elapsed = time.Since(t0)
	res.Final = n.Load() + plain
	for _, w := range work {
		res.Done += w
	}
	return errors.Join(errs...)
}

type counterBoard struct {
	n           *shm.Value[int64]
	mu          *shm.Mutex
	ready, done *shm.Semaphore
	start       *shm.Event
	work        *shm.Int64Array
}

func counterViews(mem []byte, create bool) (*counterBoard, error) {
	var b counterBoard
	var err error
	if create {
		b.n, err = shm.MakeValue[int64](mem, offCounter)
	} else {
		b.n, err = shm.OpenValue[int64](mem, offCounter)
	}
	if err != nil {
		return nil, err
	}
	if b.mu, err = shm.MutexAt(mem, offMutex); err != nil {
		return nil, err
	}
	if b.ready, err = shm.SemaphoreAt(mem, offReady); err != nil {
		return nil, err
	}
	if b.start, err = shm.EventAt(mem, offGo); err != nil {
		return nil, err
	}
	if b.done, err = shm.SemaphoreAt(mem, offDone); err != nil {
		return nil, err
	}
	if b.work, err = shm.Int64sAt(mem, offWork, MaxWorkers); err != nil {
		return nil, err
	}
	return &b, nil
}

func countProcs(ctx context.Context, res *CounterResult) error {
	r, err := shm.New("ipcplay-shm-counter", counterSize)
	if err != nil {
		return err
	}
	defer r.Close()
	b, err := counterViews(r.Bytes(), true)
	if err != nil {
		return err
	}
	g, err := startGroup(ctx, res.Workers, CounterRole, func(i int) []string {
		return []string{"-sync", string(res.Sync), "-n", strconv.Itoa(res.Increments), "-index", strconv.Itoa(i)}
	}, []*os.File{nil, r.File()})
	if err != nil {
		return err
	}
	defer g.stop()
	res.PIDs = g.pids()
	for range res.Workers {
		if err := b.ready.Wait(g.ctx); err != nil {
			return g.failed(fmt.Errorf("wait for workers to map the counter: %w", err))
		}
	}
	t0 := time.Now()
	b.start.Set()
	for range res.Workers {
		if err := b.done.Wait(g.ctx); err != nil {
			return g.failed(fmt.Errorf("wait for workers to finish: %w", err))
		}
	}
	res.Elapsed = time.Since(t0)
	res.Final = b.n.Load()
	for i := range res.Workers {
		res.Done += b.work.Load(i)
	}
	return g.wait()
}

// counterMain is the entry point of CounterRole.
func counterMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(CounterRole, flag.ContinueOnError)
	syncName := fs.String("sync", "", "none, atomic or mutex")
	n := fs.Int("n", 0, "increments")
	index := fs.Int("index", 0, "this worker's slot for its count of increments")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *index < 0 || *index >= MaxWorkers || *n < 0 || *n > MaxIncrements {
		return fmt.Errorf("-index %d -n %d: want 0..%d and 0..%d", *index, *n, MaxWorkers-1, MaxIncrements)
	}
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "counter")
	if err != nil {
		return err
	}
	r, err := shm.Open(f, counterSize)
	if err != nil {
		f.Close()
		return err
	}
	defer r.Close()
	b, err := counterViews(r.Bytes(), false)
	if err != nil {
		return err
	}
	if err := b.ready.Post(); err != nil {
		return fmt.Errorf("post ready: %w", err)
	}
	if err := b.start.Wait(ctx); err != nil {
		return err
	}
	var inc func() error
	switch Sync(*syncName) {
	case None:
		inc = func() error { b.n.Store(b.n.Load() + 1); return nil }
	case Atomic:
		inc = func() error { b.n.Add(1); return nil }
	case Lock:
		inc = func() error {
			if err := b.mu.Lock(ctx); err != nil {
				if !errors.Is(err, shm.ErrOwnerDead) {
					return err
				}
				// A sibling died holding the lock; the counter is
				// consistent (the store is one word), so carry on.
			}
			b.n.Store(b.n.Load() + 1)
			b.mu.Unlock()
			return nil
		}
	default:
		return fmt.Errorf("sync %q: want none, atomic or mutex", *syncName)
	}
	done, err := increment(ctx, *n, inc)
	b.work.Store(*index, done)
	if err != nil {
		return err
	}
	if err := b.done.Post(); err != nil {
		return fmt.Errorf("post done: %w", err)
	}
	return nil
}
