package primes

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"

	"ipcplay/procs"
	"ipcplay/shm"
)

// WorkerRole is the name of the child role that runs one worker of a check
// in Procs mode. Register it with [WorkerMain] in main and TestMain.
const WorkerRole = "ipcplay-primes-worker"

func (j job) args(workers int) []string {
	a := []string{
		"-n", strconv.FormatUint(j.n, 10),
		"-lo", strconv.FormatUint(j.r.Lo, 10),
		"-hi", strconv.FormatUint(j.r.Hi, 10),
		"-every", strconv.FormatUint(j.every, 10),
		"-index", strconv.Itoa(j.index),
		"-workers", strconv.Itoa(workers),
	}
	if !j.useFlag {
		a = append(a, "-no-flag")
	}
	return a
}

// WorkerMain is the entry point of [WorkerRole]: it maps the board it
// inherited, reports ready, waits for the start signal, and scans its range.
func WorkerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(WorkerRole, flag.ContinueOnError)
	var j job
	var workers int
	fs.Uint64Var(&j.n, "n", 0, "the number to check")
	fs.Uint64Var(&j.r.Lo, "lo", 0, "first candidate")
	fs.Uint64Var(&j.r.Hi, "hi", 0, "last candidate")
	fs.Uint64Var(&j.every, "every", DefaultCheckEvery, "candidates between looks at the flag")
	fs.IntVar(&j.index, "index", 0, "this worker's index")
	fs.IntVar(&workers, "workers", 0, "how many workers share the board")
	noFlag := fs.Bool("no-flag", false, "ignore the stop flag")
	if err := fs.Parse(args); err != nil {
		return err
	}
	j.useFlag = !*noFlag
	switch {
	case workers < 1 || workers > MaxWorkers:
		return fmt.Errorf("workers = %d, want 1..%d", workers, MaxWorkers)
	case j.index < 0 || j.index >= workers:
		return fmt.Errorf("index = %d, want 0..%d", j.index, workers-1)
	case j.every < 1:
		return fmt.Errorf("every = %d, want at least 1", j.every)
	case j.r.Lo%2 == 0 || j.r.Hi%2 == 0:
		return fmt.Errorf("range [%d, %d] has an even end", j.r.Lo, j.r.Hi)
	}

	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "board")
	if err != nil {
		return fmt.Errorf("board: %w", err)
	}
	region, err := shm.Open(f, boardSize(workers))
	if err != nil {
		f.Close()
		return fmt.Errorf("map board: %w", err)
	}
	defer region.Close()
	b, err := newBoard(region.Bytes(), workers)
	if err != nil {
		return err
	}
	ready, err := procs.ChildFile(procs.FDExtra, procs.Pipe, "ready")
	if err != nil {
		return fmt.Errorf("ready pipe: %w", err)
	}
	gate, err := procs.ChildFile(procs.FDExtra+1, procs.Pipe, "gate")
	if err != nil {
		ready.Close()
		return fmt.Errorf("gate pipe: %w", err)
	}
	defer gate.Close()
	if _, err := ready.Write([]byte{1}); err != nil {
		ready.Close()
		return fmt.Errorf("report ready: %w", err)
	}
	if err := ready.Close(); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	if _, err := io.Copy(io.Discard, gate); err != nil {
		return fmt.Errorf("wait for start: %w", err)
	}
	scan(j, b)
	return nil
}
