package primes

import (
	"fmt"

	"golang.org/x/sys/unix"

	"ipcplay/shm"
)

// The board is the state one check shares among its workers, laid out the
// same over a memfd region (procs) or Go memory (goroutines):
//
//	offset 0   stop flag: set by the worker that finds a divisor
//	offset 4   abort flag: set by the parent to end the check early
//	offset 8   int64 values:
//	           [0] the divisor found first, [1] the worker that found it,
//	           [2] CLOCK_MONOTONIC ns when the stop flag was set,
//	           then per worker w, at 3+slotsPerWorker*w:
//	           checked, end time in CLOCK_MONOTONIC ns, outcome, its divisor.
//
// Times come from CLOCK_MONOTONIC, one clock for every process on the
// machine; Go's own monotonic readings cannot be compared across processes.
const (
	offStop  = 0
	offAbort = 4
	offVals  = 8

	valFactor = 0
	valFinder = 1
	valSetAt  = 2
	valWorker = 3

	slotChecked    = 0
	slotEnd        = 1
	slotOutcome    = 2
	slotFactor     = 3
	slotsPerWorker = 4
)

// Outcome says how a worker's scan ended.
type Outcome int64

const (
	Running  Outcome = iota // not finished (or killed)
	Finished                // tried its whole range
	Found                   // found a divisor
	Stopped                 // stopped early: the stop flag was set
	Aborted                 // stopped early: the parent aborted the check
)

func (o Outcome) String() string {
	switch o {
	case Finished:
		return "finished"
	case Found:
		return "found"
	case Stopped:
		return "stopped early"
	case Aborted:
		return "aborted"
	}
	return "running"
}

type board struct {
	stop    *shm.Flag
	abort   *shm.Flag
	vals    *shm.Int64Array
	workers int
}

func boardSize(workers int) int {
	return offVals + 8*(valWorker+slotsPerWorker*workers)
}

func newBoard(mem []byte, workers int) (*board, error) {
	stop, err := shm.FlagAt(mem, offStop)
	if err != nil {
		return nil, fmt.Errorf("board stop flag: %w", err)
	}
	abort, err := shm.FlagAt(mem, offAbort)
	if err != nil {
		return nil, fmt.Errorf("board abort flag: %w", err)
	}
	vals, err := shm.Int64sAt(mem, offVals, valWorker+slotsPerWorker*workers)
	if err != nil {
		return nil, fmt.Errorf("board values: %w", err)
	}
	return &board{stop: stop, abort: abort, vals: vals, workers: workers}, nil
}

func (b *board) slot(w, s int) int { return valWorker + slotsPerWorker*w + s }

// reset clears the board for a new check. The workers are idle, waiting
// for their next job: the job's write to their pipe or channel orders
// these stores before their loads.
func (b *board) reset() {
	b.stop.Clear()
	b.abort.Clear()
	for i := range valWorker + slotsPerWorker*b.workers {
		b.vals.Store(i, 0)
	}
}

// monotonic returns CLOCK_MONOTONIC in nanoseconds.
func monotonic() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC exists on every Linux Go supports.
		panic("clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return ts.Nano()
}
