package ipc

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// ctxMutex is a mutex whose Lock can give up when a context ends, so that
// a SendContext or RecvContext waiting behind another is still bounded by
// its own context. The zero value is not usable: see newCtxMutex.
type ctxMutex struct{ ch chan struct{} }

func newCtxMutex() ctxMutex { return ctxMutex{ch: make(chan struct{}, 1)} }

func (m ctxMutex) Lock()   { m.ch <- struct{}{} }
func (m ctxMutex) Unlock() { <-m.ch }

// TryLock is sync.Mutex's TryLock, so that code written against a
// sync.Mutex field still compiles.
func (m ctxMutex) TryLock() bool { return m.tryLock() }

func (m ctxMutex) tryLock() bool {
	select {
	case m.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// lockContext locks m, or returns ctx's cause if ctx ends first.
func (m ctxMutex) lockContext(ctx context.Context) error {
	if m.tryLock() {
		return nil
	}
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// deadline is the deadline of one direction of a socket, which three
// things may want at once: the caller (SetDeadline), the frame being read
// (the frame timeout), and a context that ended (the past, to stop a
// blocked read or write at once). The socket gets the earliest. Only the
// goroutine holding the direction's lock changes frame or starts a
// context's bound, but a context's end arrives on a goroutine of its own:
// hence the mutex.
type deadline struct {
	set func(time.Time) error // the socket's SetReadDeadline or SetWriteDeadline

	mu        sync.Mutex
	user      time.Time
	frame     time.Time
	cancelled bool
}

// apply gives the socket the earliest deadline wanted. Called with d.mu
// held.
func (d *deadline) apply() error {
	t := d.user
	if !d.frame.IsZero() && (t.IsZero() || d.frame.Before(t)) {
		t = d.frame
	}
	if d.cancelled {
		t = time.Unix(1, 0)
	}
	return d.set(t)
}

func (d *deadline) setUser(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.user = t
	return d.apply()
}

func (d *deadline) setFrame(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.frame = t
	d.apply()
}

func (d *deadline) setCancelled(b bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cancelled = b
	d.apply()
}

// frameLeft returns how long the frame deadline has still to run (zero
// or less once it has passed).
func (d *deadline) frameLeft() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Until(d.frame)
}

// frameExpired reports whether a deadline error came from the frame
// timeout: it has passed, and no context ended.
func (d *deadline) frameExpired() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.cancelled && !d.frame.IsZero() && !time.Now().Before(d.frame)
}

// bound runs op, a read or a write in this direction, so that it stops
// when ctx ends, and then returns ctx's cause. It arms no timer of its own
// (ctx's end is what sets the deadline), so a context costs nothing on the
// socket until it ends.
func (d *deadline) bound(ctx context.Context, op func() error) error {
	if ctx.Done() == nil {
		return op()
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		d.setCancelled(true)
		close(fired)
	})
	err := op()
	if stop() {
		return err
	}
	<-fired // else its deadline could land on the next operation
	d.setCancelled(false)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return context.Cause(ctx)
	}
	return err
}
