package benchlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs/cost"
)

// reps is how many repetitions a cell's latency phase is cut into; their
// medians give the spread and feed "ipcplay compare".
const reps = 5

// A Cell is one measured (or skipped) cell of the matrix.
type Cell struct {
	Mech      Mech
	Size      int
	Placement string
	// Skip says why the cell was not measured (a limit), or "".
	Skip string

	Lat   *Hist           // every round trip
	Reps  []time.Duration // the median of each repetition
	Warm  int             // warm-up round trips
	Iters int             // timed round trips, chosen to fill the time
	// Span is the wall time of the timed repetitions, end to end: the
	// round trips and what the measuring side does between them (the
	// histogram, the clock, yields). Span/Iters is a mean the way perf
	// bench computes one.
	Span time.Duration

	// One-way throughput: messages sent in acknowledged batches of Window.
	Msgs    int64
	Window  int
	ThruDur time.Duration

	Cost *cost.Breakdown // per round trip, process cells at the first size

	// Beside are the goroutine baselines measured right before this
	// process cell, by mechanism name (see besides): the ratio columns
	// set the cell against them, not against cells minutes apart.
	Beside map[string]*Cell
}

// MBps returns the one-way throughput in MB/s (10^6 bytes), 0 if none.
func (c *Cell) MBps() float64 {
	if c.ThruDur <= 0 {
		return 0
	}
	return float64(c.Msgs) * float64(c.Size) / c.ThruDur.Seconds() / 1e6
}

// MsgsPerSec returns the one-way message rate, 0 if none.
func (c *Cell) MsgsPerSec() float64 {
	if c.ThruDur <= 0 {
		return 0
	}
	return float64(c.Msgs) / c.ThruDur.Seconds()
}

// Placement is where the two ends of a cell run.
type Placement struct {
	Name        string // unpinned, same-cpu, two-cpus
	Self, Other int    // CPUs; -1 when unpinned
}

// Options size a cell.
type Options struct {
	Budget time.Duration // latency phase; throughput gets half as long
	Cost   bool          // count the process cell's system calls and switches
	// MinIters, when set, is the least number of timed round trips,
	// whatever the budget.
	MinIters int
	// Phase limits the cell to one phase: phaseLat or phaseThr (after
	// the warm-up); 0 runs both.
	Phase int
}

// The phases a cell can be limited to.
const (
	phaseLat = 1
	phaseThr = 2
)

// measure runs one cell: start the echo end, lock and pin the measuring
// goroutine's thread, warm up, time round trips, then throughput.
func measure(ctx context.Context, m Mech, size int, pl Placement, o Options) (c *Cell, err error) {
	c = &Cell{Mech: m, Size: size, Placement: pl.Name}
	p, err := startPair(ctx, m, size, pl.Other)
	if err != nil {
		return nil, err
	}
	failed := true
	defer func() {
		if werr := p.wait(failed); err == nil && werr != nil {
			err = fmt.Errorf("%s echo: %w", m.Name, werr)
		}
	}()
	if err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if pl.Self >= 0 {
			var old unix.CPUSet
			if err := unix.SchedGetaffinity(0, &old); err != nil {
				return os.NewSyscallError("sched_getaffinity", err)
			}
			if err := pin(pl.Self); err != nil {
				return err
			}
			defer unix.SchedSetaffinity(0, &old)
		}
		if p.onThread != nil {
			if p.offThread != nil {
				defer p.offThread()
			}
			if err := p.onThread(); err != nil {
				return err
			}
		}
		if err := c.run(ctx, p, o); err != nil {
			return err
		}
		return p.quit(size, false)
	}(); err != nil {
		if errors.Is(err, errTooBig) {
			c.Skip = err.Error()
			return c, nil
		}
		return nil, fmt.Errorf("%s %s: %w", m.label(), sizeName(size), err)
	}
	failed = false
	return c, nil
}

// errTooBig marks a message the mechanism refused as too large.
var errTooBig = errors.New("too big")

func (c *Cell) run(ctx context.Context, p *pair, o Options) error {
	buf := make([]byte, c.Size)
	rt := func() error {
		buf[0] = opEcho
		if err := p.end.Send(buf); err != nil {
			if errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS) {
				return fmt.Errorf("past the datagram send buffer (%v): %w", err, errTooBig)
			}
			return err
		}
		return p.end.Recv(buf)
	}
	// A process cell's measuring goroutine yields now and then between
	// round trips, as its echo end does (see yieldEvery).
	var y yielder
	yield := func(now time.Time) {
		if c.Mech.Impl == Process {
			y.at(now)
		}
	}
	// The first round trip waits for the echo end to start: it is not
	// part of the warm-up's estimate.
	if err := rt(); err != nil {
		return err
	}
	// Warm-up: a tenth of the budget (at least 10 round trips), which
	// also estimates a round trip for the iteration count.
	// The estimate is the warm-up's median, not its mean: one stall of
	// the machine must not shrink the sample.
	warm := max(o.Budget/10, time.Millisecond)
	wh := NewHist()
	start := time.Now()
	for wh.N() < 10 || time.Since(start) < warm {
		t0 := time.Now()
		if err := rt(); err != nil {
			return err
		}
		d := time.Since(t0)
		wh.Record(d)
		yield(t0.Add(d))
		if wh.N()&1023 == 0 && ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
	c.Warm = int(wh.N()) + 1
	if o.Phase == phaseThr {
		return c.throughput(ctx, p, o.Budget/2, buf, yield)
	}
	per := max(wh.Quantile(0.5), 1)
	c.Iters = int(min(max(int64(o.Budget/per), reps*20, int64(o.MinIters)), 20_000_000))
	c.Lat = NewHist()
	each := (c.Iters + reps - 1) / reps
	// A repetition stops early past twice its share of the budget (a
	// stalled machine), unless MinIters asks for every round trip.
	limit := 2 * o.Budget / reps
	c.Iters = 0
	for range reps {
		h := NewHist()
		t1 := time.Now()
		for i := range each {
			t0 := time.Now()
			if err := rt(); err != nil {
				return err
			}
			d := time.Since(t0)
			h.Record(d)
			yield(t0.Add(d))
			if i&255 == 255 {
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				if o.MinIters == 0 && t0.Add(d).Sub(t1) > limit {
					break
				}
			}
		}
		c.Span += time.Since(t1)
		c.Iters += int(h.N())
		c.Reps = append(c.Reps, h.Quantile(0.5))
		c.Lat.Merge(h)
	}
	if o.Cost && c.Mech.Impl == Process {
		if err := c.cost(p, rt, yield, min(c.Iters, 20_000)); err != nil {
			return err
		}
	}
	if c.Mech.Notify || o.Phase == phaseLat {
		return nil
	}
	return c.throughput(ctx, p, o.Budget/2, buf, yield)
}

// cost counts what n round trips cost both processes.
func (c *Cell) cost(p *pair, rt func() error, yield func(time.Time), n int) error {
	counter, err := cost.Start(p.cmd.Pid(), os.Getpid())
	if err != nil {
		return nil // no counters here: the table just lacks this row
	}
	for i := range n {
		if err := rt(); err != nil {
			counter.Stop()
			return err
		}
		if i&7 == 7 {
			yield(time.Now())
		}
	}
	s, err := counter.Stop()
	if err != nil {
		return nil
	}
	b := s.Per(uint64(n))
	b.Bytes = float64(2 * c.Size) // a round trip carries the message both ways
	c.Cost = &b
	return nil
}

// throughput sends batches of window one-way messages, each batch ended by
// a message asking for a one-byte acknowledgement, for about d; yield is
// called between batches.
func (c *Cell) throughput(ctx context.Context, p *pair, d time.Duration, buf []byte, yield func(time.Time)) error {
	c.Window = window(c.Size)
	ack := make([]byte, 1)
	start := time.Now()
	for batch := 0; batch < 2 || time.Since(start) < d; batch++ {
		for i := range c.Window {
			buf[0] = opSink
			if i == c.Window-1 {
				buf[0] = opSinkAck
			}
			if err := p.end.Send(buf); err != nil {
				return err
			}
		}
		if err := p.end.Recv(ack); err != nil {
			return err
		}
		c.Msgs += int64(c.Window)
		yield(time.Now())
		if batch&63 == 63 && ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
	c.ThruDur = time.Since(start)
	return nil
}

// lockAndPin locks the calling goroutine to its thread and pins the thread
// to cpu; unlock undoes both.
func lockAndPin(cpu int) (unlock func(), err error) {
	runtime.LockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return nil, os.NewSyscallError("sched_getaffinity", err)
	}
	if err := pin(cpu); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}, nil
}

// clockCost measures what one time.Now() costs here: every timed round
// trip pays two of them, one on each side of the measured span. It is the
// median of 21 batches, so that a batch the scheduler interrupted does not
// count.
func clockCost() time.Duration {
	const batches, n = 21, 10_000
	ds := make([]time.Duration, 0, batches)
	var t time.Time
	for range batches {
		start := time.Now()
		for range n {
			t = time.Now()
		}
		ds = append(ds, t.Sub(start)/n)
	}
	slices.Sort(ds)
	return ds[batches/2]
}
