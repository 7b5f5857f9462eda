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

// Mode is where the workers run.
type Mode string

// The modes a Counter run can use.
const (
	Procs      Mode = "procs"      // child processes mapping one memfd, shm's atomics and Mutex
	Goroutines Mode = "goroutines" // goroutines, sync/atomic and sync.Mutex
)

// MaxWorkers bounds CounterConfig.Workers.
const MaxWorkers = 64

// CounterConfig describes one Counter run.
type CounterConfig struct {
	Workers    int
	Increments int // per worker
	Sync       Sync
	Mode       Mode
}

// CounterResult is what one Counter run measured. Lost is Expected-Final:
// the updates that two workers overwrote. Only None loses any; a run of
// None that lost none was lucky, not correct.
type CounterResult struct {
	CounterConfig
	Expected int64
	Final    int64
	Lost     int64
	Elapsed  time.Duration // from the start signal until every worker is done
	PIDs     []int         // the children, in Procs mode
}

// CounterRole is the child role of a Counter run in Procs mode.
const CounterRole = "ipcplay-shm-counter"

// The counter region: the counter (a shm.Value), the mutex that guards it
// under Lock, and the semaphores and event that start and end the run.
const (
	counterSize = 4096
	offCounter  = 0
	offMutex    = 64
	offReady    = 80 // Semaphore: each child posts once mapped
	offGo       = 88 // Event: the parent sets it to start everyone
	offDone     = 96 // Semaphore: each child posts when done
)

// Counter runs cfg once and reports the count it reached.
func Counter(ctx context.Context, cfg CounterConfig) (CounterResult, error) {
	if cfg.Workers < 1 || cfg.Workers > MaxWorkers {
		return CounterResult{}, fmt.Errorf("counter: %d workers, want 1..%d", cfg.Workers, MaxWorkers)
	}
	if cfg.Increments < 0 {
		return CounterResult{}, fmt.Errorf("counter: %d increments", cfg.Increments)
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
		countGoroutines(&res)
	default:
		err = fmt.Errorf("counter: mode %q: want procs or goroutines", cfg.Mode)
	}
	res.Lost = res.Expected - res.Final
	return res, err
}

func countGoroutines(res *CounterResult) {
	var (
		n     atomic.Int64 // atomic even for None: the lost updates are the lesson, not a data race
		plain int64        // guarded by mu
		mu    sync.Mutex
		wg    sync.WaitGroup
	)
	start := make(chan struct{})
	for range res.Workers {
		wg.Go(func() {
			<-start
			switch res.Sync {
			case None:
				for range res.Increments {
					n.Store(n.Load() + 1)
				}
			case Atomic:
				for range res.Increments {
					n.Add(1)
				}
			case Lock:
				for range res.Increments {
					mu.Lock()
					plain++
					mu.Unlock()
				}
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.Elapsed = time.Since(t0)
	res.Final = n.Load() + plain
}

type counterBoard struct {
	n           *shm.Value[int64]
	mu          *shm.Mutex
	ready, done *shm.Semaphore
	start       *shm.Event
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
	g, err := startGroup(ctx, res.Workers, CounterRole, func(int) []string {
		return []string{"-sync", string(res.Sync), "-n", strconv.Itoa(res.Increments)}
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
	return g.wait()
}

// counterMain is the entry point of CounterRole.
func counterMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(CounterRole, flag.ContinueOnError)
	syncName := fs.String("sync", "", "none, atomic or mutex")
	n := fs.Int("n", 0, "increments")
	if err := fs.Parse(args); err != nil {
		return err
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
	b.ready.Post()
	if err := b.start.Wait(ctx); err != nil {
		return err
	}
	switch Sync(*syncName) {
	case None:
		for range *n {
			b.n.Store(b.n.Load() + 1)
		}
	case Atomic:
		for range *n {
			b.n.Add(1)
		}
	case Lock:
		for range *n {
			if err := b.mu.Lock(ctx); err != nil {
				if !errors.Is(err, shm.ErrOwnerDead) {
					return err
				}
				// A sibling died holding the lock; the counter is
				// consistent (the store is one word), so carry on.
			}
			b.n.Store(b.n.Load() + 1)
			b.mu.Unlock()
		}
	default:
		return fmt.Errorf("sync %q: want none, atomic or mutex", *syncName)
	}
	b.done.Post()
	return nil
}
