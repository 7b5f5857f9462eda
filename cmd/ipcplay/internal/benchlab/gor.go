package benchlab

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The goroutine mechanisms copy each message in and out, as a pipe copies
// it into and out of the kernel: a receiver owns the bytes it got, and the
// sender may reuse its buffer at once.

// goPair returns the two ends of goroutine mechanism name for messages of
// up to size bytes, and a function that unblocks both for good.
func goPair(name string, size int) (a, b End, stop func()) {
	done := make(chan struct{})
	var once sync.Once
	closeDone := func() { once.Do(func() { close(done) }) }
	w := window(size)
	switch name {
	case "chan", "chan-buf":
		c := 0
		if name == "chan-buf" {
			c = w
		}
		ab, ba := make(chan []byte, c), make(chan []byte, c)
		// A ring of 2w+2 slots per direction: the sender is at most w
		// messages and the channel's capacity ahead of the receiver.
		return newChanEnd(ab, ba, done, size, 2*w+2), newChanEnd(ba, ab, done, size, 2*w+2), closeDone
	case "cond", "mutex", "spin":
		ab, ba := newBox(size, done), newBox(size, done)
		var send, recv func(*box, []byte) error
		switch name {
		case "cond":
			send, recv = (*box).condSend, (*box).condRecv
		case "mutex":
			send, recv = (*box).pollSend, (*box).pollRecv
		default:
			send, recv = (*box).spinSend, (*box).spinRecv
		}
		return &boxEnd{out: ab, in: ba, send: send, recv: recv}, &boxEnd{out: ba, in: ab, send: send, recv: recv},
			func() { closeDone(); ab.wake(); ba.wake() }
	case "copy-ring":
		return copyRingPair(size)
	}
	panic("benchlab: unknown goroutine mechanism " + name)
}

type chanEnd struct {
	in   <-chan []byte
	out  chan<- []byte
	done <-chan struct{}
	ring [][]byte
	i    int
}

func newChanEnd(in <-chan []byte, out chan<- []byte, done <-chan struct{}, size, slots int) *chanEnd {
	e := &chanEnd{in: in, out: out, done: done}
	for range slots {
		e.ring = append(e.ring, make([]byte, size))
	}
	return e
}

func (e *chanEnd) Send(b []byte) error {
	s := e.ring[e.i%len(e.ring)][:len(b)]
	e.i++
	copy(s, b)
	select {
	case e.out <- s:
		return nil
	case <-e.done:
		return errStopped
	}
}

func (e *chanEnd) Recv(b []byte) error {
	select {
	case m := <-e.in:
		if len(m) != len(b) {
			return errLength(len(m), len(b))
		}
		copy(b, m)
		return nil
	case <-e.done:
		return errStopped
	}
}

func (e *chanEnd) Close() error { return nil }

// A box is a one-message mailbox: the shape of a hand-off through shared
// memory guarded by a lock, a condition variable or a spun-on flag.
type box struct {
	mu     sync.Mutex
	cond   sync.Cond
	full   atomic.Bool
	n      int
	buf    []byte
	done   <-chan struct{}
	closed atomic.Bool
}

func newBox(size int, done <-chan struct{}) *box {
	b := &box{buf: make([]byte, size), done: done}
	b.cond.L = &b.mu
	return b
}

func (b *box) wake() {
	b.closed.Store(true)
	b.mu.Lock()
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *box) put(p []byte) { b.n = copy(b.buf, p); b.full.Store(true) }

func (b *box) take(p []byte) error {
	if b.n != len(p) {
		return errLength(b.n, len(p))
	}
	copy(p, b.buf[:b.n])
	b.full.Store(false)
	return nil
}

// condSend and condRecv hand off under the mutex, sleeping on the
// condition variable.
func (b *box) condSend(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.full.Load() {
		if b.closed.Load() {
			return errStopped
		}
		b.cond.Wait()
	}
	b.put(p)
	b.cond.Signal()
	return nil
}

func (b *box) condRecv(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.full.Load() {
		if b.closed.Load() {
			return errStopped
		}
		b.cond.Wait()
	}
	err := b.take(p)
	b.cond.Signal()
	return err
}

// pollSend and pollRecv take the mutex, look, and yield the processor
// when the box is not ready: a mutex hand-off with no condition variable.
func (b *box) pollSend(p []byte) error {
	for {
		b.mu.Lock()
		if !b.full.Load() {
			b.put(p)
			b.mu.Unlock()
			return nil
		}
		b.mu.Unlock()
		if b.closed.Load() {
			return errStopped
		}
		runtime.Gosched()
	}
}

func (b *box) pollRecv(p []byte) error {
	for {
		b.mu.Lock()
		if b.full.Load() {
			err := b.take(p)
			b.mu.Unlock()
			return err
		}
		b.mu.Unlock()
		if b.closed.Load() {
			return errStopped
		}
		runtime.Gosched()
	}
}

// spinSend and spinRecv spin on the atomic flag, yielding only every 4096
// looks so that one processor (GOMAXPROCS=1, or both ends on one CPU) still
// makes progress.
func (b *box) spinSend(p []byte) error {
	for i := 1; b.full.Load(); i++ {
		if i%4096 == 0 {
			if b.closed.Load() {
				return errStopped
			}
			runtime.Gosched()
		}
	}
	b.put(p)
	return nil
}

func (b *box) spinRecv(p []byte) error {
	for i := 1; !b.full.Load(); i++ {
		if i%4096 == 0 {
			if b.closed.Load() {
				return errStopped
			}
			runtime.Gosched()
		}
	}
	return b.take(p)
}

type boxEnd struct {
	out, in    *box
	send, recv func(*box, []byte) error
}

func (e *boxEnd) Send(p []byte) error { return e.send(e.out, p) }
func (e *boxEnd) Recv(p []byte) error { return e.recv(e.in, p) }
func (e *boxEnd) Close() error        { return nil }
