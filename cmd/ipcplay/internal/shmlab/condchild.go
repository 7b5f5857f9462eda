package shmlab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"ipcplay/procs"
	"ipcplay/procs/cost"
	"ipcplay/shm"
)

// CondRole is the child role of a Cond run in Procs mode: index 0 is the
// producer, 1..Consumers the consumers.
const CondRole = "ipcplay-shm-cond"

// The cond region: the mutex and the two conditions, the semaphores and
// events that start and end the run, then the words (see condWords).
const (
	offCondMu    = 0  // shm.Mutex
	offNotEmpty  = 16 // shm.Cond
	offNotFull   = 24 // shm.Cond
	offCondReady = 32 // Semaphore: each child posts once mapped
	offCondGo    = 40 // Event: the parent sets it to start everyone
	offCondDone  = 48 // Semaphore: each child posts when done
	offCondExit  = 56 // Event: the parent sets it once it has counted the children's system calls
	offCondWords = 64
)

func condRegionSize(consumers, capacity int) int {
	return offCondWords + 8*condWords(consumers, capacity)
}

// shmLock is condLock across processes: shm's Mutex and two Conds.
type shmLock struct {
	mu    *shm.Mutex
	conds [2]*shm.Cond
}

// lock locks the mutex. A sibling that died holding it fails the run (the
// buffer may be half updated): lock then unlocks and returns the error.
func (l *shmLock) lock(ctx context.Context) error {
	err := l.mu.Lock(ctx)
	if errors.Is(err, shm.ErrOwnerDead) {
		l.mu.Unlock()
	}
	return err
}

func (l *shmLock) unlock()         { l.mu.Unlock() }
func (l *shmLock) signal(c int)    { l.conds[c].Signal() }
func (l *shmLock) broadcast(c int) { l.conds[c].Broadcast() }

func (l *shmLock) wait(ctx context.Context, c int) error { return l.conds[c].Wait(ctx) }

type condRegion struct {
	board       *condBoard
	ready, done *shm.Semaphore
	start, exit *shm.Event
}

func condViews(mem []byte, consumers, capacity int) (*condRegion, error) {
	var v condRegion
	l := &shmLock{}
	var err error
	if l.mu, err = shm.MutexAt(mem, offCondMu); err != nil {
		return nil, err
	}
	if l.conds[notEmpty], err = shm.CondAt(mem, offNotEmpty, l.mu); err != nil {
		return nil, err
	}
	if l.conds[notFull], err = shm.CondAt(mem, offNotFull, l.mu); err != nil {
		return nil, err
	}
	if v.ready, err = shm.SemaphoreAt(mem, offCondReady); err != nil {
		return nil, err
	}
	if v.start, err = shm.EventAt(mem, offCondGo); err != nil {
		return nil, err
	}
	if v.done, err = shm.SemaphoreAt(mem, offCondDone); err != nil {
		return nil, err
	}
	if v.exit, err = shm.EventAt(mem, offCondExit); err != nil {
		return nil, err
	}
	w, err := shm.Int64sAt(mem, offCondWords, condWords(consumers, capacity))
	if err != nil {
		return nil, err
	}
	v.board = newCondBoard(w, l, capacity)
	return &v, nil
}

// condProcs runs the producer and the consumers as child processes
// mapping one memfd region.
func condProcs(ctx context.Context, res *CondResult) error {
	r, err := shm.New("ipcplay-shm-cond", condRegionSize(res.Consumers, res.Capacity))
	if err != nil {
		return err
	}
	defer r.Close()
	v, err := condViews(r.Bytes(), res.Consumers, res.Capacity)
	if err != nil {
		return err
	}
	n := 1 + res.Consumers
	g, err := startGroup(ctx, n, CondRole, func(i int) []string {
		return []string{"-index", strconv.Itoa(i), "-consumers", strconv.Itoa(res.Consumers),
			"-capacity", strconv.Itoa(res.Capacity), "-items", strconv.Itoa(res.Items)}
	}, []*os.File{nil, r.File()})
	if err != nil {
		return err
	}
	defer g.stop()
	res.PIDs = g.pids()
	for range n {
		if err := v.ready.Wait(g.ctx); err != nil {
			return g.failed(fmt.Errorf("wait for the cond workers to map the buffer: %w", err))
		}
	}
	// Count the children only: this process just waits.
	ctr, cerr := cost.StartWith(cost.Options{ByName: []string{"futex"}}, res.PIDs...)
	t0 := time.Now()
	v.start.Set()
	for range n {
		if err := v.done.Wait(g.ctx); err != nil {
			if cerr == nil {
				ctr.Close()
			}
			return g.failed(fmt.Errorf("wait for the cond workers to finish: %w", err))
		}
	}
	res.Elapsed = time.Since(t0)
	res.Cost, res.CostErr = stopCost(ctr, cerr)
	v.exit.Set()
	v.board.collect(res)
	return g.wait()
}

// condMain is the entry point of CondRole.
func condMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(CondRole, flag.ContinueOnError)
	index := fs.Int("index", 0, "0: the producer; 1..consumers: a consumer")
	consumers := fs.Int("consumers", 0, "consumers")
	capacity := fs.Int("capacity", 0, "items the buffer holds")
	items := fs.Int("items", 0, "items the producer puts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := CondConfig{Consumers: *consumers, Items: *items, Capacity: *capacity}
	if err := cfg.check(); err != nil {
		return err
	}
	if *index < 0 || *index > cfg.Consumers {
		return fmt.Errorf("-index %d: want 0..%d", *index, cfg.Consumers)
	}
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "cond buffer")
	if err != nil {
		return err
	}
	r, err := shm.Open(f, condRegionSize(cfg.Consumers, cfg.Capacity))
	if err != nil {
		f.Close()
		return err
	}
	defer r.Close()
	v, err := condViews(r.Bytes(), cfg.Consumers, cfg.Capacity)
	if err != nil {
		return err
	}
	if err := v.ready.Post(); err != nil {
		return fmt.Errorf("post ready: %w", err)
	}
	if err := v.start.Wait(ctx); err != nil {
		return err
	}
	w := v.board.worker(*index)
	if *index == 0 {
		err = w.produce(ctx, cfg.Items)
	} else {
		err = w.consume(ctx)
	}
	if err != nil {
		return err
	}
	if err := v.done.Post(); err != nil {
		return fmt.Errorf("post done: %w", err)
	}
	return v.exit.Wait(ctx)
}
