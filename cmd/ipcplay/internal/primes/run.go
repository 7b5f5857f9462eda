package primes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"ipcplay/procs"
	"ipcplay/shm"
)

// readyTimeout bounds how long starting the workers may take.
const readyTimeout = 10 * time.Second

// A runner is a set of workers in one mode, started once and given one
// job each per check, as the classic lab keeps one pool for all its
// numbers. start makes every worker ready and returns once all are; run
// hands out one round of jobs and returns when every worker has reported
// it done (or one died); close stops the workers and reaps them.
type runner interface {
	mem(size int) ([]byte, error)
	start(ctx context.Context, b *board, workers int) error
	run(ctx context.Context, jobs []job) error
	pids() []int
	close() error
}

// goRunner runs the workers on goroutines over Go memory.
type goRunner struct {
	b    *board
	wg   sync.WaitGroup
	jobs []chan job
	done chan struct{}
}

func (g *goRunner) mem(size int) ([]byte, error) { return shm.Local(size), nil }

func (g *goRunner) start(ctx context.Context, b *board, workers int) error {
	g.b = b
	g.done = make(chan struct{}, workers)
	for range workers {
		jobs := make(chan job, 1)
		g.jobs = append(g.jobs, jobs)
		g.wg.Go(func() {
			for j := range jobs {
				scan(j, b)
				g.done <- struct{}{}
			}
		})
	}
	return nil
}

func (g *goRunner) run(ctx context.Context, jobs []job) error {
	for i, j := range jobs {
		g.jobs[i] <- j
	}
	for range jobs {
		<-g.done // scan returns soon after abort, which check sets on ctx
	}
	return nil
}

func (g *goRunner) pids() []int { return nil }

func (g *goRunner) close() error {
	for _, c := range g.jobs { // nil after the first close
		close(c)
	}
	g.jobs = nil
	g.wg.Wait()
	return nil
}

// jobSize is the size of a job record on a worker's job pipe: n, the
// range's ends, every, and the use-flag bit, as little-endian uint64s.
const jobSize = 5 * 8

func (j job) encode() []byte {
	b := make([]byte, jobSize)
	binary.LittleEndian.PutUint64(b[0:], j.n)
	binary.LittleEndian.PutUint64(b[8:], j.r.Lo)
	binary.LittleEndian.PutUint64(b[16:], j.r.Hi)
	binary.LittleEndian.PutUint64(b[24:], j.every)
	if j.useFlag {
		b[32] = 1
	}
	return b
}

func decodeJob(b []byte, index int) job {
	return job{
		n:       binary.LittleEndian.Uint64(b[0:]),
		r:       Range{Lo: binary.LittleEndian.Uint64(b[8:]), Hi: binary.LittleEndian.Uint64(b[16:])},
		every:   binary.LittleEndian.Uint64(b[24:]),
		useFlag: b[32] == 1,
		index:   index,
	}
}

// procRunner runs the workers as child processes that map one memfd region.
// Each child gets the region at procs.FDShm, the write end of the shared
// "done" pipe at procs.FDExtra and the read end of its own job pipe at
// procs.FDExtra+1. A child writes one byte to done once it has mapped the
// region (ready), then for every job it reads, scans and writes one byte
// more. Closing its job pipe tells it to exit.
type procRunner struct {
	region *shm.Region
	cancel context.CancelFunc
	cmds   []*procs.Cmd
	jobs   []*os.File
	done   *os.File
	died   chan error // the first child to end outside close
	wg     sync.WaitGroup
	errs   []error
	closed bool
	mu     sync.Mutex
}

func (p *procRunner) mem(size int) ([]byte, error) {
	r, err := shm.New("ipcplay-primes", size)
	if err != nil {
		return nil, err
	}
	p.region = r
	return r.Bytes(), nil
}

func (p *procRunner) start(ctx context.Context, b *board, workers int) error {
	ctx, p.cancel = context.WithCancel(ctx)
	p.died = make(chan error, 1)
	doneR, doneW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("done pipe: %w", err)
	}
	p.done = doneR
	defer doneW.Close()
	for w := range workers {
		jobR, jobW, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("job pipe: %w", err)
		}
		p.jobs = append(p.jobs, jobW)
		cmd := procs.Command(ctx, WorkerRole, "-index", fmt.Sprint(w), "-workers", fmt.Sprint(workers))
		cmd.Index = w
		cmd.ExtraFiles = []*os.File{nil, p.region.File(), doneW, jobR}
		err = cmd.Start()
		jobR.Close() // the child holds its own copy
		if err != nil {
			return err
		}
		p.cmds = append(p.cmds, cmd)
		p.errs = append(p.errs, nil)
		p.wg.Go(func() { p.reap(w, cmd) })
	}
	doneW.Close() // the children hold their own copies
	return p.await(ctx, workers, time.Now().Add(readyTimeout), "start workers")
}

// reap waits for child w; a child that ends before close is a failure that
// ends the round in progress.
func (p *procRunner) reap(w int, cmd *procs.Cmd) {
	err := cmd.Wait()
	p.mu.Lock()
	closing := p.closed
	p.errs[w] = err
	p.mu.Unlock()
	if closing {
		return
	}
	if err == nil {
		err = fmt.Errorf("primes worker %d (pid %d) exited before it was told to", w, cmd.Pid())
	}
	select {
	case p.died <- err:
	default:
	}
}

// await reads n bytes from the done pipe, failing when a child dies first
// or the deadline passes.
func (p *procRunner) await(ctx context.Context, n int, deadline time.Time, what string) error {
	got := make(chan error, 1)
	p.done.SetReadDeadline(deadline)
	go func() {
		_, err := io.ReadFull(p.done, make([]byte, n))
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case err := <-p.died:
		p.done.SetReadDeadline(time.Now()) // end the reader
		<-got
		return fmt.Errorf("%s: %w", what, err)
	}
}

func (p *procRunner) run(ctx context.Context, jobs []job) error {
	for i, j := range jobs {
		if _, err := p.jobs[i].Write(j.encode()); err != nil {
			return fmt.Errorf("send job to worker %d: %w", i, err)
		}
	}
	// No deadline: a scan takes as long as it takes; check sets the abort
	// flag when ctx ends, and the workers stop within one block.
	return p.await(ctx, len(jobs), time.Time{}, "scan")
}

func (p *procRunner) pids() []int {
	out := make([]int, len(p.cmds))
	for i, c := range p.cmds {
		out[i] = c.Pid()
	}
	return out
}

// close tells every worker to exit, reaps them, and unmaps the region.
// Children that failed on their own are reported in index order.
func (p *procRunner) close() error {
	p.mu.Lock()
	again := p.closed
	p.closed = true
	p.mu.Unlock()
	if again {
		return nil
	}
	for _, f := range p.jobs {
		f.Close() // EOF: the worker exits 0
	}
	p.wg.Wait()
	if p.cancel != nil {
		p.cancel()
	}
	var own []error
	for _, err := range p.errs {
		var ce *procs.ChildError
		if err != nil && !(errors.As(err, &ce) && ce.Cause != nil) {
			own = append(own, err)
		}
	}
	if p.done != nil {
		p.done.Close()
	}
	if p.region != nil {
		own = append(own, p.region.Close())
	}
	return errors.Join(own...)
}
