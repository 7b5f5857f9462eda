package benchlab

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"ipcplay/procs"
)

// A pair is a running cell: the measuring side's End, and the echo end in
// a child process or a goroutine.
type pair struct {
	end       End
	onThread  func() error // run on the measuring thread once locked
	offThread func() error // undoes it, on the same thread
	cmd       *procs.Cmd   // the child, for process cells
	cancel    context.CancelFunc
	stop      func()        // unblocks a goroutine pair for good
	served    chan error    // the echo goroutine's result
	unblocked chan struct{} // closed when the unblocking goroutine ends
	cleanup   func() error
}

// startPair starts the echo end of mechanism m for size-byte messages,
// its thread pinned to cpu (-1: unpinned).
func startPair(ctx context.Context, m Mech, size, cpu int) (*pair, error) {
	if m.Impl == Goroutine {
		a, b, stop := goPair(m.Name, size)
		p := &pair{end: a, stop: stop, served: make(chan error, 1)}
		go func() {
			p.served <- serveGoroutine(b, size, cpu)
		}()
		return p, nil
	}
	s, err := setup(ctx, m.Name, size)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	cmd := procs.Command(cctx, EchoRole, "-mech", m.Name, "-size", strconv.Itoa(size), "-cpu", strconv.Itoa(cpu))
	for i, f := range s.child {
		cmd.SetFile(procs.FDExtra+i, f)
	}
	if s.shmFile != nil {
		for len(cmd.ExtraFiles) <= procs.FDShm-3 {
			cmd.ExtraFiles = append(cmd.ExtraFiles, nil)
		}
		cmd.ExtraFiles[procs.FDShm-3] = s.shmFile
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, errors.Join(fmt.Errorf("start %s echo: %w", m.Name, err), closeSetup(s))
	}
	p := &pair{end: s.end, cmd: cmd, cancel: cancel, cleanup: func() error { return closeSetup(s) }}
	if s.unblock != nil {
		// Owned by wait: it ends when the child's context does, which
		// wait cancels, and wait waits for it before closing the
		// descriptors unblock writes to.
		p.unblocked = make(chan struct{})
		go func() {
			defer close(p.unblocked)
			<-cctx.Done()
			s.unblock()
		}()
	}
	if s.onThread != nil {
		p.onThread = func() error { return s.onThread(cmd.Pid()) }
		p.offThread = s.offThread
	}
	return p, nil
}

func closeSetup(s *procSetup) error {
	err := s.end.Close()
	if s.cleanup != nil {
		err = errors.Join(err, s.cleanup())
	}
	return err
}

// serveGoroutine is the echo goroutine: pinned like a child's thread when
// cpu >= 0.
func serveGoroutine(e End, size, cpu int) error {
	if cpu >= 0 {
		unlock, err := lockAndPin(cpu)
		if err != nil {
			return err
		}
		defer unlock()
	}
	return serve(e, size, false)
}

// quit tells the echo end to stop; failed says the cell failed, so the
// echo end is stopped the hard way instead.
func (p *pair) quit(size int, failed bool) error {
	if failed {
		return nil
	}
	msg := make([]byte, size)
	msg[0] = opQuit
	return p.end.Send(msg)
}

// wait waits for the echo end to finish and releases the pair. With
// failed set, it first kills the child or unblocks the goroutine.
func (p *pair) wait(failed bool) error {
	if p.cmd == nil {
		if failed {
			p.stop()
		}
		err := <-p.served
		p.stop()
		if failed {
			return nil // errStopped, of our own doing
		}
		return err
	}
	if failed {
		p.cancel()
	}
	err := p.cmd.Wait()
	p.cancel()
	if p.unblocked != nil {
		<-p.unblocked
	}
	err = errors.Join(err, p.cleanup())
	if failed {
		return nil
	}
	return err
}
