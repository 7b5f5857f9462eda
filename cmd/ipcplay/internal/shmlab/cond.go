package shmlab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	_ "unsafe" // for go:linkname

	"ipcplay/procs/cost"
)

// The bounds of CondConfig.
const (
	MaxConsumers = 32
	MaxItems     = 10_000_000 // about a minute across processes on a busy 2-CPU machine
	MaxCapacity  = 4096
)

// condSamples is how many wake-up latencies each waiter keeps: a uniform
// sample (reservoir sampling) of all its wake-ups, so that memory does not
// grow with --items.
const condSamples = 2048

// CondConfig describes one Cond run: the notebook's Condition example, one
// producer and Consumers consumers sharing a bounded buffer of Capacity
// items under one mutex and two condition variables.
type CondConfig struct {
	Consumers int
	Items     int
	Capacity  int
	Mode      Mode
}

// CondResult is what one Cond run measured. The producer puts the items
// 1..Items; the consumers add up what they take, so that Consumed, Sum and
// SumSquares (both modulo 2^64) against the Want figures show every item
// taken exactly once.
type CondResult struct {
	CondConfig
	Consumed             int64
	Sum, SumSquares      uint64
	WantSum, WantSquares uint64
	MaxFill              int64 // the fullest the buffer was after a put
	Overfull             int64 // puts that left more than Capacity items, takes that left fewer than none: must be 0
	Elapsed              time.Duration

	// ConsumerWaits counts the times a consumer found the buffer empty
	// and waited on not-empty; ProducerWaits the times the producer found
	// it full and waited on not-full.
	ConsumerWaits, ProducerWaits int64
	// ConsumerWake and ProducerWake are sampled wake-up latencies, sorted:
	// from the Signal that ended a wait to the waiter running again with
	// the mutex held.
	ConsumerWake, ProducerWake []time.Duration

	Cost    cost.Sample // every system call of the workers, futex by name
	CostErr error       // why Cost was not measured
	PIDs    []int       // the children, in Procs mode: the producer first
}

// ExactlyOnce reports whether every item was taken exactly once.
func (r CondResult) ExactlyOnce() bool {
	return r.Consumed == int64(r.Items) && r.Sum == r.WantSum && r.SumSquares == r.WantSquares
}

// ItemsPerSec is the run's throughput.
func (r CondResult) ItemsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Consumed) / r.Elapsed.Seconds()
}

// FutexPerItem is the futex system calls of the run over its items, or
// -1 when they were not counted.
func (r CondResult) FutexPerItem() float64 {
	n, ok := r.Cost.ByName["futex"]
	if r.CostErr != nil || r.Cost.SyscallMethod != cost.MethodTracepoint || !ok || r.Items == 0 {
		return -1
	}
	return float64(n) / float64(r.Items)
}

func (c CondConfig) check() error {
	switch {
	case c.Consumers < 1 || c.Consumers > MaxConsumers:
		return fmt.Errorf("cond: %d consumers, want 1..%d", c.Consumers, MaxConsumers)
	case c.Items < 1 || c.Items > MaxItems:
		return fmt.Errorf("cond: %d items, want 1..%d", c.Items, MaxItems)
	case c.Capacity < 1 || c.Capacity > MaxCapacity:
		return fmt.Errorf("cond: capacity %d, want 1..%d", c.Capacity, MaxCapacity)
	}
	return nil
}

// Cond runs cfg once.
func Cond(ctx context.Context, cfg CondConfig) (CondResult, error) {
	if err := cfg.check(); err != nil {
		return CondResult{}, err
	}
	res := CondResult{CondConfig: cfg}
	for v := uint64(1); v <= uint64(cfg.Items); v++ {
		res.WantSum += v
		res.WantSquares += v * v
	}
	var err error
	switch cfg.Mode {
	case Procs:
		err = condProcs(ctx, &res)
	case Goroutines:
		err = condGoroutines(ctx, &res)
	default:
		err = fmt.Errorf("cond: mode %q: want procs or goroutines", cfg.Mode)
	}
	return res, err
}

// nanotime is the Go runtime's monotonic clock: CLOCK_MONOTONIC read
// through the vDSO, no system call. It is one clock for every process on
// the machine, so a stamp the producer process writes into the region can
// be subtracted from a consumer process's reading; time.Now's monotonic
// reading is relative to each process's start and cannot. (queuelab does
// the same; runtime.nanotime is on the runtime's list of linkable names.)
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// The two conditions.
const (
	notEmpty = 0 // consumers wait on it; the producer signals it after a put
	notFull  = 1 // the producer waits on it; a consumer signals it after a take
)

// condLock is the mutex and the two condition variables: shm's Mutex and
// Cond across processes, sync.Mutex and sync.Cond across goroutines.
type condLock interface {
	lock(ctx context.Context) error
	unlock()
	// wait waits on condition c; it returns with the mutex held, whatever
	// it returns.
	wait(ctx context.Context, c int) error
	signal(c int)
	broadcast(c int)
}

// words are the int64 words of the buffer and its bookkeeping: an
// shm.Int64Array in the shared region, or local atomics.
type words interface {
	Load(i int) int64
	Store(i int, v int64)
	Add(i int, d int64) int64
}

// The word layout, shared by both modes. Words up to wItems are fixed;
// the items (Capacity of them) and the wake-up samples (condSamples per
// worker) follow. Worker 0 is the producer, 1..Consumers the consumers.
const (
	wHead    = 0 // items taken so far; the next take is at wHead%Capacity
	wTail    = 1 // items put so far
	wClosed  = 2 // 1 once the producer is done
	wMaxFill = 3
	wBad     = 4 // over-capacity puts and below-empty takes

	// Per condition c, at wCond+4c: sleepers (workers inside wait), then
	// the head and tail of its queue of Signal stamps.
	wCond = 8

	// The stamp queues: stampRing words per condition.
	wStamps   = 16
	stampRing = MaxConsumers + 1

	// Per worker, at wWorker+statWords*i: its counters.
	wWorker   = wStamps + 2*stampRing
	statWords = 8
	wItems    = wWorker + statWords*(MaxConsumers+1)
)

// The counters of a worker, at wWorker+statWords*i.
const (
	sTaken = iota
	sSum
	sSquares
	sWaits // waits on a condition
	sSeen  // wake-ups that matched a Signal stamp
)

// condWords is the number of words a run of cfg needs.
func condWords(consumers, capacity int) int {
	return wItems + capacity + condSamples*(1+consumers)
}

// condBoard is the bounded buffer: its words and its lock.
type condBoard struct {
	w        words
	l        condLock
	capacity int64
	samples  int // word index of worker 0's samples
}

func newCondBoard(w words, l condLock, capacity int) *condBoard {
	return &condBoard{w: w, l: l, capacity: int64(capacity), samples: wItems + capacity}
}

// A condWorker is the producer (index 0) or a consumer on a board.
type condWorker struct {
	*condBoard
	index int
	rng   *rand.Rand // for the reservoir of wake-up samples
}

func (b *condBoard) worker(i int) *condWorker {
	return &condWorker{condBoard: b, index: i, rng: rand.New(rand.NewPCG(uint64(i), 0x636f6e64))}
}

func (w *condWorker) stat(s int) int { return wWorker + statWords*w.index + s }

// fill is the number of items in the buffer; the mutex must be held.
func (b *condBoard) fill() int64 { return b.w.Load(wTail) - b.w.Load(wHead) }

// signal signals condition c with the mutex held. If a worker sleeps on c
// that no earlier Signal has been stamped for, it first queues the time,
// for that worker to read when it runs.
func (b *condBoard) signal(c int) {
	base := wCond + 4*c
	head, tail := b.w.Load(base+1), b.w.Load(base+2)
	if b.w.Load(base) > tail-head {
		b.w.Store(wStamps+stampRing*c+int(tail%stampRing), nanotime())
		b.w.Store(base+2, tail+1)
	}
	b.l.signal(c)
}

// waitOn waits on condition c with the mutex held, and samples the time
// from the Signal that woke it, if it was stamped, to now. It returns with
// the mutex held.
func (w *condWorker) waitOn(ctx context.Context, c int) error {
	base := wCond + 4*c
	w.w.Add(base, 1)
	w.w.Add(w.stat(sWaits), 1)
	err := w.l.wait(ctx, c)
	now := nanotime()
	w.w.Add(base, -1)
	if err != nil {
		return err
	}
	if head, tail := w.w.Load(base+1), w.w.Load(base+2); tail > head {
		stamp := w.w.Load(wStamps + stampRing*c + int(head%stampRing))
		w.w.Store(base+1, head+1)
		w.sample(now - stamp)
	}
	return nil
}

// sample keeps d in the worker's reservoir of condSamples latencies.
func (w *condWorker) sample(d int64) {
	n := w.w.Add(w.stat(sSeen), 1)
	j := n - 1
	if n > condSamples {
		j = w.rng.Int64N(n)
	}
	if j < condSamples {
		w.w.Store(w.samples+condSamples*w.index+int(j), d)
	}
}

// checkEveryItem is how many items a worker moves between looks at its
// context when it never has to wait.
const checkEveryItem = 1024

// produce puts the items 1..n, waiting while the buffer is full, then
// marks the board closed and wakes every consumer.
func (w *condWorker) produce(ctx context.Context, n int) error {
	for v := int64(1); v <= int64(n); v++ {
		if v%checkEveryItem == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := w.l.lock(ctx); err != nil {
			return err
		}
		for w.fill() >= w.capacity {
			if err := w.waitOn(ctx, notFull); err != nil {
				w.l.unlock()
				return err
			}
		}
		t := w.w.Load(wTail)
		w.w.Store(wItems+int(t%w.capacity), v)
		w.w.Store(wTail, t+1)
		f := t + 1 - w.w.Load(wHead)
		if f > w.capacity {
			w.w.Add(wBad, 1)
		}
		if f > w.w.Load(wMaxFill) {
			w.w.Store(wMaxFill, f)
		}
		w.signal(notEmpty)
		w.l.unlock()
	}
	if err := w.l.lock(ctx); err != nil {
		return err
	}
	w.w.Store(wClosed, 1)
	w.l.broadcast(notEmpty)
	w.l.unlock()
	return nil
}

// consume takes items until the board is closed and empty, and stores its
// count, sum and sum of squares.
func (w *condWorker) consume(ctx context.Context) error {
	var taken int64
	var sum, squares uint64
	defer func() {
		w.w.Store(w.stat(sTaken), taken)
		w.w.Store(w.stat(sSum), int64(sum))
		w.w.Store(w.stat(sSquares), int64(squares))
	}()
	for {
		if taken%checkEveryItem == checkEveryItem-1 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := w.l.lock(ctx); err != nil {
			return err
		}
		for w.fill() == 0 && w.w.Load(wClosed) == 0 {
			if err := w.waitOn(ctx, notEmpty); err != nil {
				w.l.unlock()
				return err
			}
		}
		if w.fill() == 0 { // closed and drained
			w.l.unlock()
			return nil
		}
		h := w.w.Load(wHead)
		v := w.w.Load(wItems + int(h%w.capacity))
		w.w.Store(wHead, h+1)
		if w.w.Load(wTail)-(h+1) < 0 {
			w.w.Add(wBad, 1)
		}
		w.signal(notFull)
		w.l.unlock()
		taken++
		sum += uint64(v)
		squares += uint64(v) * uint64(v)
	}
}

// collect reads the workers' counters and samples into res.
func (b *condBoard) collect(res *CondResult) {
	res.MaxFill = b.w.Load(wMaxFill)
	res.Overfull = b.w.Load(wBad)
	for i := range 1 + res.Consumers {
		w := b.worker(i)
		waits := b.w.Load(w.stat(sWaits))
		lat := &res.ConsumerWake
		if i == 0 {
			res.ProducerWaits = waits
			lat = &res.ProducerWake
		} else {
			res.ConsumerWaits += waits
			res.Consumed += b.w.Load(w.stat(sTaken))
			res.Sum += uint64(b.w.Load(w.stat(sSum)))
			res.SumSquares += uint64(b.w.Load(w.stat(sSquares)))
		}
		for j := range min(b.w.Load(w.stat(sSeen)), condSamples) {
			*lat = append(*lat, time.Duration(b.w.Load(b.samples+condSamples*i+int(j))))
		}
	}
	slices.Sort(res.ConsumerWake)
	slices.Sort(res.ProducerWake)
}

// percentile returns the p-th percentile (0..100) of sorted, or 0.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)-1))
	return sorted[i]
}

// goLock is condLock across goroutines: sync.Mutex and two sync.Conds.
// sync.Cond.Wait takes no context, so a cancelled context broadcasts both
// conditions (under the mutex, so that no waiter misses it) and wait
// reports the context's error.
type goLock struct {
	mu    sync.Mutex
	conds [2]*sync.Cond
}

func newGoLock() *goLock {
	l := &goLock{}
	l.conds[notEmpty] = sync.NewCond(&l.mu)
	l.conds[notFull] = sync.NewCond(&l.mu)
	return l
}

func (l *goLock) lock(context.Context) error { l.mu.Lock(); return nil }
func (l *goLock) unlock()                    { l.mu.Unlock() }
func (l *goLock) signal(c int)               { l.conds[c].Signal() }
func (l *goLock) broadcast(c int)            { l.conds[c].Broadcast() }

func (l *goLock) wait(ctx context.Context, c int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.conds[c].Wait()
	return ctx.Err()
}

// wakeAll wakes every waiter, for a cancelled context.
func (l *goLock) wakeAll() {
	l.mu.Lock()
	l.conds[notEmpty].Broadcast()
	l.conds[notFull].Broadcast()
	l.mu.Unlock()
}

// localWords are words in this process's memory, atomics as in the region.
type localWords []atomic.Int64

func (w localWords) Load(i int) int64         { return w[i].Load() }
func (w localWords) Store(i int, v int64)     { w[i].Store(v) }
func (w localWords) Add(i int, d int64) int64 { return w[i].Add(d) }

// condGoroutines runs the producer and the consumers as goroutines.
func condGoroutines(ctx context.Context, res *CondResult) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l := newGoLock()
	stop := context.AfterFunc(ctx, l.wakeAll)
	defer stop()
	b := newCondBoard(make(localWords, condWords(res.Consumers, res.Capacity)), l, res.Capacity)
	errs := make([]error, 1+res.Consumers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 1 + res.Consumers {
		w := b.worker(i)
		wg.Go(func() {
			<-start
			if i == 0 {
				errs[i] = w.produce(ctx, res.Items)
			} else {
				errs[i] = w.consume(ctx)
			}
			if errs[i] != nil {
				cancel() // the others would wait for it forever
			}
		})
	}
	ctr, cerr := cost.StartWith(cost.Options{ByName: []string{"futex"}}, os.Getpid())
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.Elapsed = time.Since(t0)
	res.Cost, res.CostErr = stopCost(ctr, cerr)
	b.collect(res)
	return errors.Join(errs...)
}

// stopCost stops a counter that Start returned, or passes on its error.
func stopCost(ctr *cost.Counter, err error) (cost.Sample, error) {
	if err != nil {
		return cost.Sample{}, err
	}
	return ctr.Stop()
}
