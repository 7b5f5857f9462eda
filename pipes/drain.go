package pipes

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// Keep says which part of a drained stream a [Drain] keeps in memory.
type Keep int

const (
	// KeepHead keeps the first Limit bytes. If more arrive, the drain
	// still reads them to EOF (so the writer never blocks) and counts
	// them, and Wait returns a *LimitError.
	KeepHead Keep = iota
	// KeepTail keeps only the last Limit bytes and counts the rest, like
	// a log tail. Going over the limit is not an error.
	KeepTail
)

// LimitError reports a [KeepHead] drain that received more than it keeps.
type LimitError struct {
	Limit int
	Total int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("drain: %d bytes read, only the first %d kept", e.Total, e.Limit)
}

// A Drain is a goroutine reading a stream to EOF into bounded memory. Its
// owner starts it with [StartDrain] and must call [Drain.Wait] once, which
// returns when the stream ends. The methods are safe for concurrent use.
type Drain struct {
	r     io.Reader
	limit int
	keep  Keep
	total atomic.Int64
	done  chan struct{}

	// Set by the goroutine before done is closed.
	buf []byte
	err error
}

// StartDrain starts a goroutine that reads r until EOF (or a read error)
// and keeps at most limit bytes of it as keep says. The drain does not
// close r: the owner closes it after Wait. A read that fails with
// os.ErrClosed (the owner closed r to stop the drain) ends it without
// error.
func StartDrain(r io.Reader, limit int, keep Keep) *Drain {
	if limit < 0 {
		limit = 0
	}
	d := &Drain{r: r, limit: limit, keep: keep, done: make(chan struct{})}
	go d.run()
	return d
}

func (d *Drain) run() {
	defer close(d.done)
	chunk := make([]byte, 64<<10)
	var ring []byte // KeepTail: a ring of limit bytes
	start := 0      // KeepTail: index of the oldest byte once the ring is full
	for {
		n, err := d.r.Read(chunk)
		if n > 0 {
			d.total.Add(int64(n))
			p := chunk[:n]
			switch d.keep {
			case KeepHead:
				if room := d.limit - len(d.buf); room > 0 {
					d.buf = append(d.buf, p[:min(room, len(p))]...)
				}
			case KeepTail:
				if d.limit == 0 {
					break
				}
				if len(p) >= d.limit {
					ring = append(ring[:0], p[len(p)-d.limit:]...)
					start = 0
					break
				}
				for len(p) > 0 && len(ring) < d.limit {
					k := min(d.limit-len(ring), len(p))
					ring = append(ring, p[:k]...)
					p = p[k:]
				}
				for len(p) > 0 { // ring is full: overwrite the oldest
					k := copy(ring[start:], p)
					p = p[k:]
					start = (start + k) % d.limit
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				d.err = fmt.Errorf("drain: %w", err)
			}
			break
		}
	}
	if d.keep == KeepTail {
		d.buf = append(append([]byte(nil), ring[start:]...), ring[:start]...)
	}
	if d.err == nil && d.keep == KeepHead && d.total.Load() > int64(d.limit) {
		d.err = &LimitError{Limit: d.limit, Total: d.total.Load()}
	}
}

// Total returns the number of bytes read so far. It may be called while
// the drain runs, to watch its progress.
func (d *Drain) Total() int64 { return d.total.Load() }

// Done returns a channel closed when the drain has reached EOF.
func (d *Drain) Done() <-chan struct{} { return d.done }

// Wait waits for EOF and returns the bytes kept, the total number of bytes
// read, and the first read error other than EOF (or a *LimitError).
func (d *Drain) Wait() ([]byte, int64, error) {
	<-d.done
	return d.buf, d.total.Load(), d.err
}
