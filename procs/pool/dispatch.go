package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// dispatch is the state of one map, owned by the goroutine running it.
type dispatch struct {
	p         *Pool
	gen       uint64
	chunkSize int
	next      func() ([]byte, bool, error)
	deliver   func(i int, raw []byte, err error) error

	retry       []*chunk    // chunks to send before new input, in order
	deaths      map[int]int // worker deaths blamed on each task index
	outstanding int         // chunks of this map in flight or in retry
	inputDone   bool
	nextIndex   int
}

// run maps the tasks next produces over the pool, chunkSize at a time, and
// calls deliver once for every task index, in the order results arrive.
// deliver's error, or an error from next, ends the map early; chunks still
// in flight then finish on their workers and their results are dropped.
func (p *Pool) run(ctx context.Context, chunkSize int, next func() ([]byte, bool, error), deliver func(int, []byte, error) error) error {
	if chunkSize < 1 {
		chunkSize = 1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.gen++
	d := &dispatch{
		p:         p,
		gen:       p.gen,
		chunkSize: chunkSize,
		next:      next,
		deliver:   deliver,
		deaths:    make(map[int]int),
	}
	for {
		if err := d.fill(); err != nil {
			return err
		}
		if d.inputDone && d.outstanding == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			p.stop()
			return fmt.Errorf("pool: map stopped: %w", context.Cause(ctx))
		case <-p.ctx.Done():
			p.stop()
			return fmt.Errorf("%w: %w", ErrClosed, context.Cause(p.ctx))
		case m := <-p.msgs:
			var err error
			if m.res != nil {
				err = d.result(m.w, m.res)
			} else {
				err = d.death(m)
			}
			if err != nil {
				return err
			}
		}
	}
}

// fill sends chunks to every worker with room, round robin, until the
// workers are full or there is nothing left to send.
func (d *dispatch) fill() error {
	for {
		sent := false
		for _, w := range d.p.workers {
			if w.dead || w.broken || len(w.inflight) >= d.p.cfg.InFlight {
				continue
			}
			c, err := d.take()
			if err != nil || c == nil {
				return err
			}
			d.send(w, c)
			sent = true
		}
		if !sent {
			return nil
		}
	}
}

// take returns the next chunk to send: a retried one first, else a new
// one read from the input; nil when there is none.
func (d *dispatch) take() (*chunk, error) {
	if len(d.retry) > 0 {
		c := d.retry[0]
		d.retry[0] = nil
		d.retry = d.retry[1:]
		return c, nil
	}
	if d.inputDone {
		return nil, nil
	}
	c := &chunk{gen: d.gen}
	for len(c.tasks) < d.chunkSize {
		b, ok, err := d.next()
		if err != nil {
			return nil, fmt.Errorf("pool: task %d: %w", d.nextIndex, err)
		}
		if !ok {
			d.inputDone = true
			break
		}
		c.index = append(c.index, d.nextIndex)
		c.tasks = append(c.tasks, b)
		d.nextIndex++
	}
	if len(c.tasks) == 0 {
		return nil, nil
	}
	d.outstanding++
	return c, nil
}

// send gives c to w. A failed send means w is broken: it is killed, and its
// reader reports the death, which re-sends c.
func (d *dispatch) send(w *worker, c *chunk) {
	d.p.nextID++
	c.id = d.p.nextID
	w.inflight = append(w.inflight, c)
	w.held.Add(1)
	tasks := make([]msgpack.RawMessage, len(c.tasks))
	for i, t := range c.tasks {
		tasks[i] = t
	}
	if err := w.conn.Send(&chunkMsg{ID: c.id, Tasks: tasks}); err != nil {
		w.broken = true
		w.cmd.Process().Kill()
	}
}

// result handles the answer to w's oldest chunk.
func (d *dispatch) result(w *worker, res *resultMsg) error {
	if len(w.inflight) == 0 || w.inflight[0].id != res.ID ||
		len(res.Results) != len(w.inflight[0].tasks) ||
		(len(res.Errs) != 0 && len(res.Errs) != len(res.Results)) {
		// The worker broke the protocol: kill it, and its death re-sends
		// what it held.
		w.broken = true
		w.cmd.Process().Kill()
		return nil
	}
	c := w.inflight[0]
	w.inflight[0] = nil
	w.inflight = w.inflight[1:]
	w.worked = true
	d.p.failing = 0
	w.held.Add(-1)
	if c.gen != d.gen {
		return nil // left over from a map that ended early
	}
	d.outstanding--
	for i, idx := range c.index {
		var err error
		if len(res.Errs) != 0 && res.Errs[i] != "" {
			err = &TaskError{Index: idx, Deaths: d.deaths[idx], Err: &HandlerError{Msg: res.Errs[i]}}
		}
		d.p.completed.Add(1)
		if err := d.deliver(idx, res.Results[i], err); err != nil {
			return err
		}
	}
	return nil
}

// death handles a worker that exited: it blames the chunk the worker was
// working on, re-queues what it held, records the event and starts a
// replacement.
func (d *dispatch) death(m message) error {
	p, w := d.p, m.w
	w.dead = true
	w.held.Store(0)
	ev := Event{Time: time.Now(), Slot: w.slot, PID: w.cmd.Pid()}
	describe(&ev, m.err)
	if ev.Error == "" && m.recv != nil && !errors.Is(m.recv, io.EOF) {
		ev.Error = m.recv.Error()
	}
	var requeue []*chunk
	var failed []*TaskError
	for k, c := range w.inflight {
		if c.gen != d.gen {
			continue
		}
		if k > 0 {
			requeue = append(requeue, c) // never started: not to blame
			for _, idx := range c.index {
				ev.Resent = append(ev.Resent, idx)
			}
			continue
		}
		// The chunk it was working on: each task counts a death, and the
		// survivors go again one by one to find the culprit.
		d.outstanding--
		for i, idx := range c.index {
			d.deaths[idx]++
			ev.Blamed = append(ev.Blamed, idx)
			if n := d.deaths[idx]; n >= p.cfg.MaxRetries {
				cause := ErrWorkerDeaths
				if m.err != nil {
					cause = fmt.Errorf("%w: %w", ErrWorkerDeaths, m.err)
				}
				failed = append(failed, &TaskError{Index: idx, Deaths: n, Err: cause})
				ev.Failed = append(ev.Failed, idx)
				continue
			}
			requeue = append(requeue, &chunk{gen: d.gen, index: []int{idx}, tasks: [][]byte{c.tasks[i]}})
			d.outstanding++
			ev.Resent = append(ev.Resent, idx)
		}
	}
	if len(w.inflight) == 0 && !w.worked {
		p.failing++
	}
	w.inflight = nil
	// Blamed singles first, then the untouched chunks, then older retries.
	d.retry = append(requeue, d.retry...)

	var startErr error
	if p.failing > 3+p.cfg.Workers {
		startErr = fmt.Errorf("%w (%d in a row, last: %v)", ErrWorkersFailing, p.failing, m.err)
	} else if nw, err := p.start(w.slot); err != nil {
		startErr = err
	} else {
		ev.Replacement = nw.cmd.Pid()
		p.evmu.Lock()
		p.workers[w.slot] = nw
		p.evmu.Unlock()
	}
	p.evmu.Lock()
	p.events = append(p.events, ev)
	p.evmu.Unlock()
	if startErr != nil {
		p.stop()
		return startErr
	}
	for _, te := range failed {
		p.completed.Add(1)
		if err := d.deliver(te.Index, nil, te); err != nil {
			return err
		}
	}
	return nil
}
