package pool

import "sync"

// inbox carries the workers' messages to the dispatcher. Putting never
// blocks: a reader that cannot hand a result over stops reading its
// socket, the worker then blocks writing its next result and stops reading
// chunks, and a dispatcher sending it one waits forever (issue 15, finding
// 1). The inbox is unbounded but accounted: a worker answers only chunks
// it was sent, at most Config.InFlight at a time, plus its hello and its
// death, so it never holds more than Workers x (InFlight + 2) messages of
// the live workers, and those of the dead ones that were not taken yet.
type inbox struct {
	mu    sync.Mutex
	q     []message // q[head:] are waiting
	head  int
	ready chan struct{} // holds a token while q may be non-empty
}

func newInbox() *inbox { return &inbox{ready: make(chan struct{}, 1)} }

// put appends m and wakes the dispatcher.
func (b *inbox) put(m message) {
	b.mu.Lock()
	b.q = append(b.q, m)
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// take removes the oldest message, if there is one.
func (b *inbox) take() (message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == len(b.q) {
		return message{}, false
	}
	m := b.q[b.head]
	b.q[b.head] = message{}
	if b.head++; b.head == len(b.q) {
		b.q, b.head = b.q[:0], 0 // empty: reuse the array
	}
	return m, true
}
