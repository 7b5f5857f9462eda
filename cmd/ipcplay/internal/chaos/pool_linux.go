package chaos

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
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
	runtime.KeepAlive(spin(x))
	return x * x, nil
}

// spin does some 30 µs of work (more on a busy machine) that the compiler
// cannot drop: long enough that a map outlasts the start of the
// replacements for its killed workers, so that later kills find a
// victim.
func spin(seed int64) int64 {
	h := uint64(seed) | 1
	for range 12000 {
		h ^= h << 13
		h ^= h >> 7
		h ^= h << 17
	}
	return int64(h)
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
	k := &poolKiller{p: p, it: it, fired: o.Fired, victims: p.PIDs()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// The map's callback makes the kills as results arrive (a goroutine
	// woken by a timer can be late by a whole map on a busy machine);
	// this goroutine makes those the callback could not, when results
	// stop coming (every worker killed, the replacements starting).
	wg.Go(func() {
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for !k.try(done.Load()) {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	seen := make([]uint8, it.Work)
	var lost []int
	check := func(i int, r int64, err error) error {
		if i < 0 || i >= it.Work {
			return fmt.Errorf("task index %d out of range", i)
		}
		seen[i]++
		k.try(done.Add(1))
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

// A poolKiller makes an iteration's kills on a pool, from the map's
// callback and from a goroutine, whichever gets there first.
type poolKiller struct {
	p  *pool.Pool
	it Iteration

	// victims are the workers that said hello before the map (Ready):
	// a worker killed before its hello counts as a failed start, and
	// three in a row fail the map on purpose (TestWorkersFailingAtStart).
	// Plan makes at most Procs kills, one per victim.
	victims []int

	mu    sync.Mutex
	next  int   // the next kill to make
	fired []int // Outcome.Fired
}

// try makes the kills whose point done has reached and reports whether
// every kill has been made. Each kills a victim not killed yet, one holding
// chunks if there is one.
func (k *poolKiller) try(done int64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for ; k.next < len(k.it.Kills); k.next++ {
		kill := k.it.Kills[k.next]
		if done < int64(kill.After) {
			return false
		}
		left := slices.DeleteFunc(slices.Clone(k.victims), func(pid int) bool { return slices.Contains(k.fired, pid) })
		if len(left) == 0 {
			return true // cannot happen: Plan makes at most Procs kills
		}
		pids := slices.DeleteFunc(k.p.Busy(), func(pid int) bool { return !slices.Contains(left, pid) })
		if len(pids) == 0 {
			pids = left
		}
		pid := pids[kill.Index%len(pids)]
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			k.fired[k.next] = pid
		}
	}
	return true
}
