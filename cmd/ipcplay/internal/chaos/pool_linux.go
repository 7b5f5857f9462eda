package chaos

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"ipcplay/procs/pool"
)

// WorkerRole is the pool worker of the chaos lab: it squares int64 tasks,
// spinning a few microseconds on each so that kills land mid-chunk.
const WorkerRole = "ipcplay-chaos-worker"

func square(_ context.Context, x int64) (int64, error) {
	spin(x)
	return x * x, nil
}

// spin does about 10 µs of work that the compiler cannot drop.
func spin(seed int64) int64 {
	h := uint64(seed) | 1
	for range 4000 {
		h ^= h << 13
		h ^= h >> 7
		h ^= h << 17
	}
	return int64(h & 1)
}

// runPool maps it.Work tasks on it.Procs workers and SIGKILLs a worker
// holding chunks at each kill's point; afterwards every task must have
// come back exactly once, with its square or with a *pool.TaskError that a
// recorded death names.
func runPool(ctx context.Context, it Iteration) Outcome {
	o := newOutcome(it)
	p, err := pool.New(ctx, pool.Config{Role: WorkerRole, Workers: it.Procs})
	if err != nil {
		o.ended(ctx, err)
		return o
	}
	defer func() {
		if err := p.Close(); err != nil {
			o.failf("close pool: %w", err)
		}
	}()
	if err := p.Ready(ctx); err != nil {
		o.ended(ctx, err)
		return o
	}
	var done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		killLoop(stop, it.Kills, done.Load, func(i int, k Kill) {
			// Kill only a worker that has said hello, as
			// TestChaosKills does (one killed before counts as a
			// failed start, and three in a row fail the map on
			// purpose), and not one killed already whose death the
			// pool has not seen yet.
			tick := time.NewTicker(pollEvery)
			defer tick.Stop()
			for {
				if len(p.Startups()) >= it.Procs+len(p.Events()) {
					pids := slices.DeleteFunc(p.Busy(), func(pid int) bool { return slices.Contains(o.Fired, pid) })
					if len(pids) == 0 {
						pids = slices.DeleteFunc(p.PIDs(), func(pid int) bool { return pid == 0 || slices.Contains(o.Fired, pid) })
					}
					if len(pids) > 0 {
						pid := pids[k.Index%len(pids)]
						if syscall.Kill(pid, syscall.SIGKILL) == nil {
							o.Fired[i] = pid
						}
						return
					}
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})
	})
	seen := make([]uint8, it.Work)
	var lost []int
	check := func(i int, r int64, err error) error {
		if i < 0 || i >= it.Work {
			return fmt.Errorf("task index %d out of range", i)
		}
		seen[i]++
		done.Add(1)
		if err != nil {
			var te *pool.TaskError
			if !errors.As(err, &te) || te.Index != i || !errors.Is(err, pool.ErrWorkerDeaths) {
				return fmt.Errorf("task %d: %w", i, err)
			}
			lost = append(lost, i)
			return nil
		}
		if r != int64(i)*int64(i) {
			return fmt.Errorf("task %d: result %d, want %d", i, r, i*i)
		}
		return nil
	}
	err = pool.MapUnorderedWith(ctx, p, tasks(it.Work), pool.MapOptions{ChunkSize: it.Chunk, Len: it.Work}, check)
	close(stop)
	wg.Wait()
	o.ended(ctx, err)

	events := p.Events()
	o.Deaths = len(events)
	for _, ev := range events {
		if i := slices.Index(o.Fired, ev.PID); i >= 0 && ev.Signal == "SIGKILL" {
			o.died(i)
		}
	}
	for i, n := range seen {
		switch {
		case n > 1:
			o.failf("task %d delivered %d times", i, n)
		case n == 0 && err == nil:
			o.failf("task %d never delivered", i)
		}
	}
	for _, i := range lost {
		by := 0
		for _, ev := range events {
			if slices.Contains(ev.Failed, i) {
				by = ev.PID
			}
		}
		if by == 0 {
			o.failf("task %d failed, and no recorded death names it", i)
			continue
		}
		o.addLostBy(by)
	}
	o.Lost = int64(len(lost))
	o.Results = done.Load() - o.Lost
	return o
}

func tasks(n int) iter.Seq[int64] {
	return func(yield func(int64) bool) {
		for i := range n {
			if !yield(int64(i)) {
				return
			}
		}
	}
}
