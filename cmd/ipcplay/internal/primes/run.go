package primes

import (
	"context"
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

// goRunner runs the workers on goroutines over Go memory.
type goRunner struct {
	b        *board
	wg       sync.WaitGroup
	gate     chan struct{}
	released bool
}

func (g *goRunner) mem(size int) ([]byte, error) { return shm.Local(size), nil }

func (g *goRunner) start(ctx context.Context, b *board, jobs []job) error {
	g.b = b
	g.gate = make(chan struct{})
	var ready sync.WaitGroup
	ready.Add(len(jobs))
	for _, j := range jobs {
		g.wg.Go(func() {
			ready.Done()
			<-g.gate
			scan(j, b)
		})
	}
	ready.Wait()
	return nil
}

func (g *goRunner) release() error {
	g.released = true
	close(g.gate)
	return nil
}

func (g *goRunner) wait() error {
	g.wg.Wait()
	return nil
}

func (g *goRunner) pids() []int { return nil }

func (g *goRunner) close() error {
	if g.gate != nil && !g.released {
		g.b.abort.Set()
		g.release()
	}
	g.wg.Wait()
	return nil
}

// procRunner runs the workers as child processes that map one memfd region.
// Each child gets the region at procs.FDShm, the write end of a "ready" pipe
// at procs.FDExtra and the read end of a "gate" pipe at procs.FDExtra+1. A
// child writes one byte to ready once it has mapped the region, then blocks
// reading the gate; closing the gate's write end releases all children at
// once.
type procRunner struct {
	region *shm.Region
	cancel context.CancelFunc
	cmds   []*procs.Cmd
	gate   *os.File
	waited bool
	werr   error
}

func (p *procRunner) mem(size int) ([]byte, error) {
	r, err := shm.New("ipcplay-primes", size)
	if err != nil {
		return nil, err
	}
	p.region = r
	return r.Bytes(), nil
}

func (p *procRunner) start(ctx context.Context, b *board, jobs []job) error {
	ctx, p.cancel = context.WithCancel(ctx)
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("ready pipe: %w", err)
	}
	defer readyR.Close()
	gateR, gateW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return fmt.Errorf("gate pipe: %w", err)
	}
	p.gate = gateW
	var startErr error
	for _, j := range jobs {
		cmd := procs.Command(ctx, WorkerRole, j.args(len(jobs))...)
		cmd.Index = j.index
		cmd.ExtraFiles = []*os.File{nil, p.region.File(), readyW, gateR}
		if err := cmd.Start(); err != nil {
			startErr = err
			break
		}
		p.cmds = append(p.cmds, cmd)
	}
	// The children hold their own copies now; ready sees EOF once every
	// child has written its byte and closed its end (or died).
	readyW.Close()
	gateR.Close()
	if startErr != nil {
		return startErr
	}
	readyR.SetReadDeadline(time.Now().Add(readyTimeout))
	got, err := io.Copy(io.Discard, readyR)
	if err == nil && got == int64(len(jobs)) {
		return nil
	}
	p.cancel()
	if werr := p.wait(); werr != nil {
		return fmt.Errorf("start workers: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("start workers: %d of %d ready: %w", got, len(jobs), err)
	}
	return fmt.Errorf("start workers: %d of %d ready", got, len(jobs))
}

func (p *procRunner) release() error {
	if err := p.gate.Close(); err != nil {
		return fmt.Errorf("release workers: %w", err)
	}
	return nil
}

// wait reaps every child. A child that fails makes the others be killed;
// the error reports the children that failed on their own, in index order.
func (p *procRunner) wait() error {
	if p.waited {
		return p.werr
	}
	p.waited = true
	errs := make([]error, len(p.cmds))
	var wg sync.WaitGroup
	for i, c := range p.cmds {
		wg.Go(func() {
			if err := c.Wait(); err != nil {
				errs[i] = err
				p.cancel()
			}
		})
	}
	wg.Wait()
	var own []error
	for _, err := range errs {
		var ce *procs.ChildError
		if errors.As(err, &ce) && ce.Cause != nil {
			continue // killed because a sibling failed or ctx ended
		}
		if err != nil {
			own = append(own, err)
		}
	}
	p.werr = errors.Join(own...)
	if p.werr == nil && slicesAny(errs) {
		p.werr = errors.Join(errs...)
	}
	return p.werr
}

func slicesAny(errs []error) bool {
	for _, err := range errs {
		if err != nil {
			return true
		}
	}
	return false
}

func (p *procRunner) pids() []int {
	out := make([]int, len(p.cmds))
	for i, c := range p.cmds {
		out[i] = c.Pid()
	}
	return out
}

func (p *procRunner) close() error {
	var err error
	if p.cancel != nil {
		if !p.waited {
			p.cancel()
			p.wait()
		}
		p.cancel()
	}
	if p.gate != nil {
		p.gate.Close() // already closed by release on the normal path
	}
	if p.region != nil {
		err = p.region.Close()
	}
	return err
}
