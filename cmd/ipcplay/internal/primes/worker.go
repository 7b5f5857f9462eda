package primes

import (
	"context"
	"flag"
	"fmt"
	"io"

	"ipcplay/procs"
	"ipcplay/shm"
)

// WorkerRole is the name of the child role that runs one worker of a check
// in Procs mode. Register it with [WorkerMain] in main and TestMain.
const WorkerRole = "ipcplay-primes-worker"

// WorkerMain is the entry point of [WorkerRole]: it maps the board it
// inherited, reports ready on the done pipe, then for each job it reads
// from its job pipe scans the job's range and reports done, until the job
// pipe ends.
func WorkerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(WorkerRole, flag.ContinueOnError)
	var index, workers int
	fs.IntVar(&index, "index", 0, "this worker's index")
	fs.IntVar(&workers, "workers", 0, "how many workers share the board")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case workers < 1 || workers > MaxWorkers:
		return fmt.Errorf("workers = %d, want 1..%d", workers, MaxWorkers)
	case index < 0 || index >= workers:
		return fmt.Errorf("index = %d, want 0..%d", index, workers-1)
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
	done, err := procs.ChildFile(procs.FDExtra, procs.Pipe, "done")
	if err != nil {
		return fmt.Errorf("done pipe: %w", err)
	}
	defer done.Close()
	jobs, err := procs.ChildFile(procs.FDExtra+1, procs.Pipe, "job")
	if err != nil {
		return fmt.Errorf("job pipe: %w", err)
	}
	defer jobs.Close()
	one := []byte{1}
	if _, err := done.Write(one); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	rec := make([]byte, jobSize)
	for {
		if _, err := io.ReadFull(jobs, rec); err == io.EOF {
			return nil // told to exit
		} else if err != nil {
			return fmt.Errorf("read job: %w", err)
		}
		j := decodeJob(rec, index)
		switch {
		case j.every < 1:
			return fmt.Errorf("job: every = %d, want at least 1", j.every)
		case j.r.Len() > 0 && (j.r.Lo%2 == 0 || j.r.Hi%2 == 0):
			return fmt.Errorf("job: range [%d, %d] has an even end", j.r.Lo, j.r.Hi)
		}
		scan(j, b)
		if _, err := done.Write(one); err != nil {
			return fmt.Errorf("report done: %w", err)
		}
	}
}
