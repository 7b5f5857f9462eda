package shmlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"ipcplay/procs"
	"ipcplay/shm"
)

// RegisterRoles registers the child roles of the shm labs with procs.
func RegisterRoles() {
	procs.Register(CounterRole, counterMain)
	procs.Register(SquareRole, squareMain)
	procs.Register(BenchRole, benchMain)
	procs.Register(CondRole, condMain)
	if !procs.Registered(shm.RoleRecoveryHolder) { // another lab may share it
		procs.Register(shm.RoleRecoveryHolder, shm.RecoveryHolder)
	}
}

// group is a set of children started together. When one fails, the
// group's context is cancelled with its error as the cause, so that a
// parent waiting on shared memory for it stops waiting.
type group struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	cmds   []*procs.Cmd
	wg     sync.WaitGroup
	errs   []error
	waited bool
}

// startGroup starts n children of role; child i gets args(i) and files as
// ExtraFiles.
func startGroup(ctx context.Context, n int, role string, args func(i int) []string, files []*os.File) (*group, error) {
	g := &group{errs: make([]error, n)}
	g.ctx, g.cancel = context.WithCancelCause(ctx)
	for i := range n {
		c := procs.Command(g.ctx, role, args(i)...)
		c.Index = i
		c.ExtraFiles = files
		if err := c.Start(); err != nil {
			g.stop()
			return nil, fmt.Errorf("start %s %d: %w", role, i, err)
		}
		g.cmds = append(g.cmds, c)
		g.wg.Go(func() {
			if err := c.Wait(); err != nil {
				g.errs[i] = err
				g.cancel(err)
			}
		})
	}
	return g, nil
}

// wait waits for every child and reports the failures: those of children
// that failed on their own if any, else every one (children killed
// because the caller's context ended).
func (g *group) wait() error {
	g.wg.Wait()
	if !g.waited {
		g.waited = true
		g.cancel(nil)
	}
	if own := g.own(); own != nil {
		return own
	}
	return errors.Join(g.errs...)
}

// own joins the failures of children that failed on their own, not
// because they were stopped.
func (g *group) own() error {
	var own []error
	for _, err := range g.errs {
		var ce *procs.ChildError
		if err != nil && (!errors.As(err, &ce) || ce.Cause == nil) {
			own = append(own, err)
		}
	}
	return errors.Join(own...)
}

// stop kills what still runs and waits for it.
func (g *group) stop() {
	g.cancel(errors.New("stopped"))
	g.wg.Wait()
	g.waited = true
}

// failed stops the group after a wait on shared memory returned err, and
// returns the error to report: a child's own failure if there was one
// (which is why the wait ended), else err.
func (g *group) failed(err error) error {
	g.stop()
	if own := g.own(); own != nil {
		return own
	}
	return err
}

// pids returns the children's process ids.
func (g *group) pids() []int {
	var out []int
	for _, c := range g.cmds {
		out = append(out, c.Pid())
	}
	return out
}
