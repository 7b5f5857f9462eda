package procs

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// A Group is a set of children started together that stand or fall
// together: when one fails, the group's context is cancelled with that
// failure as its cause, which stops the others (SIGTERM, then SIGKILL
// after their WaitDelay) and tells a parent waiting on them (on shared
// memory, say) to stop waiting. Its methods are for the goroutine that
// started it; Context may be used anywhere.
type Group struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	cmds   []*Cmd
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error // by index, set by the waiting goroutines
	waited bool
}

// ErrGroupStopped is the cause a Group's context ends with when Stop
// stopped it.
var ErrGroupStopped = errors.New("procs: group stopped")

// StartGroup starts n children under a context derived from ctx: child i
// is the Cmd that command(gctx, i) returns, which it must make with
// Command(gctx, ...); StartGroup sets its Index to i. If a start fails,
// the children already started are stopped and waited for, and the error
// names the child.
func StartGroup(ctx context.Context, n int, command func(gctx context.Context, i int) *Cmd) (*Group, error) {
	g := &Group{errs: make([]error, n)}
	g.ctx, g.cancel = context.WithCancelCause(ctx)
	for i := range n {
		c := command(g.ctx, i)
		c.Index = i
		if err := c.Start(); err != nil {
			g.Stop()
			return nil, fmt.Errorf("start group: %w", err)
		}
		g.cmds = append(g.cmds, c)
		g.wg.Go(func() {
			if err := c.Wait(); err != nil {
				g.mu.Lock()
				g.errs[i] = err
				g.mu.Unlock()
				g.cancel(err)
			}
		})
	}
	return g, nil
}

// Context is done when a child fails (its cause is the child's
// *ChildError), when Stop is called, or when the parent context is done.
func (g *Group) Context() context.Context { return g.ctx }

// Wait waits for every child and returns nil if all exited with status 0.
// Otherwise it joins, in index order, first the failures of the children
// that failed on their own, then those of the children that were stopped
// because of them or because the context ended: errors.As finds the first
// cause.
func (g *Group) Wait() error {
	g.wg.Wait()
	if !g.waited {
		g.waited = true
		g.cancel(nil)
	}
	return g.joined()
}

// Stop stops the children that still run and waits for all of them.
func (g *Group) Stop() {
	g.cancel(ErrGroupStopped)
	g.wg.Wait()
	g.waited = true
}

// Failed stops the group after a wait on the children (on shared memory,
// say) returned err, and returns the error to report: the failure of a
// child that failed on its own if there was one (which is why the wait
// ended), else err.
func (g *Group) Failed(err error) error {
	g.Stop()
	if own := g.own(); own != nil {
		return own
	}
	return err
}

// Cmds returns the children, by index.
func (g *Group) Cmds() []*Cmd { return g.cmds }

// PIDs returns the children's process ids, by index.
func (g *Group) PIDs() []int {
	out := make([]int, len(g.cmds))
	for i, c := range g.cmds {
		out[i] = c.Pid()
	}
	return out
}

// stopped reports whether err is the failure of a child killed because its
// context ended, rather than one that failed on its own.
func stopped(err error) bool {
	var ce *ChildError
	return errors.As(err, &ce) && ce.Cause != nil
}

// own joins the failures of children that failed on their own.
func (g *Group) own() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var own []error
	for _, err := range g.errs {
		if err != nil && !stopped(err) {
			own = append(own, err)
		}
	}
	return errors.Join(own...)
}

func (g *Group) joined() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var own, rest []error
	for _, err := range g.errs {
		switch {
		case err == nil:
		case stopped(err):
			rest = append(rest, err)
		default:
			own = append(own, err)
		}
	}
	return errors.Join(append(own, rest...)...)
}
