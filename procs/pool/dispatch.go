package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// dispatch is the state of one map, owned by the goroutine running it. The
// map encodes its tasks one by one into the chunk being built (enc, adding,
// added); a full chunk is sent as soon as a worker has room, and until
// then the map handles the workers' messages, delivering results through
// onChunk and onFail. So the input is read only as fast as workers free up.
//
// The dispatcher never blocks on a worker: it queues chunks to each
// worker's writer goroutine, which holds fewer than InFlight of them, and
// takes the readers' messages from an inbox that never refuses one. What
// it waits for is a message, the map's deadline, or a task timeout.
type dispatch struct {
	p       *Pool
	ctx     context.Context
	gen     uint64
	sizer   sizer         // chooses each chunk's size
	timeout time.Duration // each task's, 0 for none
	// onChunk receives the results of tasks first..first+n-1, encoded back
	// to back in data; errs is nil or holds each task's *TaskError.
	onChunk func(first, n int, data []byte, errs []error) error
	// onFail receives a task that failed without a result: it killed its
	// worker too often, or ran past the timeout.
	onFail func(te *TaskError) error

	buf   bytes.Buffer // the chunk being built
	enc   *msgpack.Encoder
	count int // tasks in buf
	last  int // where the last of them starts in buf
	// offs is where each task of buf starts, kept only when a task may
	// encode as other than one msgpack value (a custom encoder may write
	// two, as msgpack's EncodeMulti example does), which walking the
	// chunk's values cannot split: for any type without a fast path.
	offs     []int
	keepOffs bool

	pending     *chunk      // a full chunk waiting for a worker with room
	retry       []*chunk    // chunks to send again, before anything new
	deaths      map[int]int // worker deaths blamed on each task index
	outstanding int         // chunks of this map not yet answered
	nextIndex   int
	timer       *time.Timer // the nearest overdue check, when timeout > 0
}

// chunk is a group of tasks sent as one message: tasks first..first+n-1,
// encoded back to back in data. Where each task starts is found only for
// a chunk to be split (index), which is rare: a slice of n ints per chunk
// was a sixth of what a map allocated. Only tasks of the fast path, one
// msgpack value each, are found so; the map records the others' starts
// (see dispatch.offs).
type chunk struct {
	id    uint64
	gen   uint64
	first int
	n     int
	data  []byte
	offs  []int // task i starts at offs[i], once index has run
}

// index finds where each of c's tasks starts, for slice.
func (c *chunk) index() error {
	if c.offs != nil || c.n == 0 {
		return nil
	}
	offs := make([]int, 0, c.n)
	err := walk(c.data, func(pos int) { offs = append(offs, pos) })
	if err == nil && len(offs) != c.n {
		err = fmt.Errorf("%w: %d values where %d tasks belong", errWire, len(offs), c.n)
	}
	if err != nil {
		return fmt.Errorf("pool: index chunk of tasks %d..%d: %w", c.first, c.first+c.n-1, err)
	}
	c.offs = offs
	return nil
}

// indexes lists the input indexes of c's tasks.
func (c *chunk) indexes() []int {
	idx := make([]int, c.n)
	for i := range idx {
		idx[i] = c.first + i
	}
	return idx
}

// slice returns a chunk of c's tasks i..j-1; c was indexed.
func (c *chunk) slice(i, j int) *chunk {
	if i >= j {
		return &chunk{gen: c.gen, first: c.first + i}
	}
	start, end := c.offs[i], len(c.data)
	if j < c.n {
		end = c.offs[j]
	}
	offs := make([]int, j-i)
	for k := range offs {
		offs[k] = c.offs[i+k] - start
	}
	return &chunk{gen: c.gen, first: c.first + i, n: j - i, data: c.data[start:end], offs: offs}
}

// begin starts a map on p: it waits for any other map to end, and returns
// the map's dispatch, which the caller ends with end.
func (p *Pool) begin(ctx context.Context, o MapOptions, onChunk func(int, int, []byte, []error) error, onFail func(*TaskError) error) (*dispatch, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.gen++
	d := &dispatch{
		p:       p,
		ctx:     ctx,
		gen:     p.gen,
		sizer:   newSizer(o, p.cfg.Workers),
		timeout: o.TaskTimeout,
		onChunk: onChunk,
		onFail:  onFail,
		deaths:  make(map[int]int),
	}
	d.enc = msgpack.NewEncoder(&d.buf)
	return d, nil
}

// end ends the map. Chunks still in flight finish on their workers, and
// their results are dropped when they arrive.
func (d *dispatch) end() {
	if d.timer != nil {
		d.timer.Stop()
	}
	d.p.mu.Unlock()
}

// adding is called before the map encodes a task to enc.
func (d *dispatch) adding() {
	d.last = d.buf.Len()
	d.count++
	if d.keepOffs {
		d.offs = append(d.offs, d.last)
	}
}

// added is called after the map encoded a task to enc; a full chunk is
// submitted.
func (d *dispatch) added() error {
	if d.count < d.sizer.size && d.buf.Len() < maxChunkBytes {
		return nil
	}
	return d.submit()
}

// tooLarge fails the task just encoded if it could not be sent: the chunk
// before it is submitted without it, and it fails in its place.
func (d *dispatch) tooLarge() error {
	start := d.last
	size := d.buf.Len() - start
	if size <= maxValueBytes {
		return nil
	}
	d.buf.Truncate(start)
	d.count--
	if d.keepOffs {
		d.offs = d.offs[:len(d.offs)-1]
	}
	if err := d.submit(); err != nil {
		return err
	}
	idx := d.nextIndex
	d.nextIndex++
	d.p.completed.Add(1)
	return d.onFail(&TaskError{Index: idx, Err: fmt.Errorf("%w: encoded in %d bytes, over %d", ErrTooLarge, size, maxValueBytes)})
}

// submit closes the chunk being built and waits until a worker takes it.
func (d *dispatch) submit() error {
	if d.count == 0 {
		return nil
	}
	c := &chunk{
		gen:   d.gen,
		first: d.nextIndex,
		n:     d.count,
		data:  bytes.Clone(d.buf.Bytes()),
	}
	if d.keepOffs {
		c.offs, d.offs = d.offs, make([]int, 0, min(d.sizer.size, 1<<16))
	}
	d.nextIndex += c.n
	d.buf.Reset()
	d.count = 0
	d.sizer.submitted(c.n)
	d.outstanding++
	d.pending = c
	for {
		d.fill()
		if d.pending == nil {
			return nil
		}
		if err := d.wait(); err != nil {
			return err
		}
	}
}

// finish sends the last, partial chunk and waits for every result.
func (d *dispatch) finish() error {
	if err := d.submit(); err != nil {
		return err
	}
	for {
		d.fill()
		if d.outstanding == 0 {
			return nil
		}
		if err := d.wait(); err != nil {
			return err
		}
	}
}

// wait handles one message from a worker, or the end of the map's or the
// pool's context, which stops every worker, or a worker holding a chunk
// past its deadline, which is killed.
func (d *dispatch) wait() error {
	p := d.p
	for {
		if m, ok := p.inbox.take(); ok {
			return d.handle(m)
		}
		var overdue <-chan time.Time
		if d.timeout > 0 {
			overdue = d.armOverdue()
		}
		select {
		case <-d.ctx.Done():
			p.stop()
			return fmt.Errorf("pool: map stopped: %w", context.Cause(d.ctx))
		case <-p.ctx.Done():
			p.stop()
			return fmt.Errorf("%w: %w", ErrClosed, context.Cause(p.ctx))
		case <-p.inbox.ready:
		case <-overdue:
			d.killOverdue()
		}
	}
}

// handle handles one message from a worker's reader.
func (d *dispatch) handle(m message) error {
	if m.res != nil {
		return d.result(m.w, m.res)
	}
	return d.death(m)
}

// overdueSlack is added to every chunk's deadline: time for a worker's
// watchdog to report, and for a loaded machine to run it. A variable so
// that the backstop's test need not wait seconds per death.
var overdueSlack = 5 * time.Second

// startDeadline is how long a worker that holds chunks of a map with a
// task timeout may take to say hello before it is killed, as a failed
// start: a start-up stuck for good would otherwise hold its chunks
// forever. A variable so that its test need not wait that long.
var startDeadline = 30 * time.Second

// watched reports whether w's current chunk has a deadline: w is a live
// worker that holds a chunk of this map. That chunk may wait behind one
// of an earlier map that ended early, sent without a timeout, which then
// gets this map's deadline: it holds this map up as much as its own
// would.
func (d *dispatch) watched(w *worker) bool {
	if w.dead || w.broken {
		return false
	}
	for _, c := range w.inflight {
		if c.gen == d.gen {
			return true
		}
	}
	return false
}

// deadline is when w's current chunk becomes overdue: each of its tasks
// may take the timeout, and the worker's own watchdog one more to report,
// plus overdueSlack. It is a backstop for a worker whose watchdog cannot
// run.
func (d *dispatch) deadline(w *worker) time.Time {
	if !w.ready {
		return w.spawned.Add(startDeadline) // its start-up is not the task's
	}
	c := w.inflight[0]
	return w.headSince.Add(d.timeout*time.Duration(c.n+1) + overdueSlack)
}

// armOverdue sets the timer for the nearest deadline of a live worker's
// current chunk, and returns its channel, nil if there is none.
func (d *dispatch) armOverdue() <-chan time.Time {
	var next time.Time
	for _, w := range d.p.workers {
		if !d.watched(w) {
			continue
		}
		if t := d.deadline(w); next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if next.IsZero() {
		return nil
	}
	wait := max(time.Until(next), 0)
	if d.timer == nil {
		d.timer = time.NewTimer(wait)
	} else {
		d.timer.Reset(wait)
	}
	return d.timer.C
}

// killOverdue kills every worker holding its chunk past the deadline; its
// death then blames the chunk as any death does.
func (d *dispatch) killOverdue() {
	now := time.Now()
	for _, w := range d.p.workers {
		if !d.watched(w) {
			continue
		}
		if !now.Before(d.deadline(w)) {
			w.broken, w.overdue = true, true
			w.cmd.Process().Kill()
		}
	}
}

// fill sends chunks to every worker with room, round robin: retried chunks
// first, then the pending one.
func (d *dispatch) fill() {
	for {
		sent := false
		for _, w := range d.p.workers {
			if w.dead || w.broken || len(w.inflight) >= d.p.cfg.InFlight {
				continue
			}
			var c *chunk
			switch {
			case len(d.retry) > 0:
				c = d.retry[0]
				d.retry[0] = nil
				d.retry = d.retry[1:]
			case d.pending != nil:
				c, d.pending = d.pending, nil
			default:
				return
			}
			d.send(w, c)
			sent = true
		}
		if !sent {
			return
		}
	}
}

// send queues c for w's writer goroutine. It never blocks: w holds fewer
// than InFlight chunks, and sendq, of capacity InFlight, holds only chunks
// w holds. If the writer fails, it kills w, and w's death re-sends c.
func (d *dispatch) send(w *worker, c *chunk) {
	d.p.nextID++
	c.id = d.p.nextID
	if len(w.inflight) == 0 {
		w.headSince = time.Now()
	}
	w.inflight = append(w.inflight, c)
	w.held.Add(1)
	w.sendq <- chunkMsg{ID: c.id, N: c.n, Tasks: c.data, Timeout: int64(d.timeout)}
}

// result handles the answer to w's oldest chunk.
func (d *dispatch) result(w *worker, res *resultMsg) error {
	if res.ID == helloID {
		w.ready = true
		d.p.failing = 0
		if len(w.inflight) > 0 {
			w.headSince = time.Now() // it starts working only now
		}
		return nil
	}
	if res.Hung > 0 && len(w.inflight) > 0 && w.inflight[0].id == res.ID && res.Hung <= w.inflight[0].n {
		// Its watchdog caught a task past the timeout; the worker exits
		// with ExitHung (or is killed if it has not after reapGrace), and
		// its death fails that task, unless the chunk's results still
		// come first (the task ended as the watchdog fired).
		w.hung = res.Hung - 1
		w.broken = true
		proc := w.cmd.Process()
		time.AfterFunc(reapGrace, func() { proc.Kill() }) // a no-op once it is reaped
		return nil
	}
	if res.Hung > 0 && res.ID != helloID && res.ID <= d.p.nextID && (len(w.inflight) == 0 || res.ID < w.inflight[0].id) {
		// A report on a chunk it answered already: its watchdog fired as
		// the task ended, after the results were sent. It exits all the
		// same; the chunks it holds go again, blamed for nothing.
		w.broken, w.quitting = true, true
		proc := w.cmd.Process()
		time.AfterFunc(reapGrace, func() { proc.Kill() })
		return nil
	}
	if len(w.inflight) == 0 || w.inflight[0].id != res.ID || res.N != w.inflight[0].n ||
		(len(res.Errs) != 0 && len(res.Errs) != res.N) || res.Hung != 0 {
		// The worker broke the protocol: kill it, and its death re-sends
		// what it held.
		w.broken = true
		w.cmd.Process().Kill()
		return nil
	}
	c := w.inflight[0]
	w.inflight[0] = nil
	w.inflight = w.inflight[1:]
	w.held.Add(-1)
	if w.hung >= 0 {
		// The task reported hung ended after all, as the watchdog fired:
		// the worker exits, and nothing else it holds is to blame.
		w.hung, w.quitting = -1, true
	}
	now := time.Now()
	served := now.Sub(w.headSince)
	if len(w.inflight) > 0 {
		w.headSince = now
	}
	if c.gen != d.gen {
		return nil // left over from a map that ended early
	}
	d.outstanding--
	d.sizer.answered(c.n, served)
	// w has room again: send it its next chunk before the results are
	// delivered, which may take a while (decoding, the caller's f), so
	// that a worker done with the chunks it holds does not wait for that.
	d.fill()
	var errs []error
	for i, msg := range res.Errs {
		if msg == "" {
			continue
		}
		if errs == nil {
			errs = make([]error, c.n)
		}
		idx := c.first + i
		errs[i] = &TaskError{Index: idx, Deaths: d.deaths[idx], Err: &HandlerError{Msg: msg}}
	}
	d.p.completed.Add(int64(c.n))
	d.p.chunks.Add(1)
	err := d.onChunk(c.first, c.n, res.Results, errs)
	// Nothing onChunk gave out refers to Results: every decoder copies.
	w.reuse(res)
	return err
}

// maxStartFailures is how many workers in a row may die before they start
// serving until the pool gives up.
const maxStartFailures = 3

// death handles a worker that exited: it blames the chunk the worker was
// working on, re-queues what it held, records the event and starts a
// replacement. A worker that reported a hung task fails that task alone and
// blames nothing.
func (d *dispatch) death(m message) error {
	p, w := d.p, m.w
	if len(w.inflight) > 0 {
		// The chunk it was working on may be split below.
		if err := w.inflight[0].index(); err != nil {
			p.stop() // a bug: the map's own encoding does not parse
			return err
		}
	}
	w.dead = true
	w.held.Store(0)
	w.closeSend()
	ev := Event{Time: time.Now(), Slot: w.slot, PID: w.cmd.Pid()}
	describe(&ev, m.err)
	if ev.Error == "" && m.recv != nil && !errors.Is(m.recv, io.EOF) {
		ev.Error = m.recv.Error()
	}
	ev.Overdue = w.overdue
	var requeue []*chunk
	var failed []*TaskError
	for k, c := range w.inflight {
		if c.gen != d.gen {
			continue
		}
		if k > 0 || !w.ready || w.quitting {
			requeue = append(requeue, c) // never started, or not its death: not to blame
			ev.Resent = append(ev.Resent, c.indexes()...)
			continue
		}
		if w.hung >= 0 {
			// The task that ran past the timeout fails; the others of its
			// chunk go again, blamed for nothing.
			idx := c.first + w.hung
			failed = append(failed, &TaskError{Index: idx, Deaths: d.deaths[idx], Err: &TimeoutError{Limit: d.timeout}})
			ev.TimedOut = append(ev.TimedOut, idx)
			d.outstanding--
			for _, part := range []*chunk{c.slice(0, w.hung), c.slice(w.hung+1, c.n)} {
				if part.n > 0 {
					requeue = append(requeue, part)
					d.outstanding++
					ev.Resent = append(ev.Resent, part.indexes()...)
				}
			}
			continue
		}
		// The chunk it was working on: each task counts a death. The chunk
		// goes again whole, unless one more death would fail a task: then
		// its tasks go one by one, so that only the culprit can fail.
		d.outstanding--
		split := false
		for i := range c.n {
			idx := c.first + i
			d.deaths[idx]++
			ev.Blamed = append(ev.Blamed, idx)
			if d.deaths[idx] >= p.cfg.MaxRetries-1 {
				split = true
			}
		}
		if !split {
			requeue = append(requeue, c)
			d.outstanding++
			ev.Resent = append(ev.Resent, c.indexes()...)
			continue
		}
		for i := range c.n {
			idx := c.first + i
			if n := d.deaths[idx]; n >= p.cfg.MaxRetries {
				cause := ErrWorkerDeaths
				if m.err != nil {
					cause = fmt.Errorf("%w: %w", ErrWorkerDeaths, m.err)
				}
				failed = append(failed, &TaskError{Index: idx, Deaths: n, Err: cause})
				ev.Failed = append(ev.Failed, idx)
				continue
			}
			requeue = append(requeue, c.slice(i, i+1))
			d.outstanding++
			ev.Resent = append(ev.Resent, idx)
		}
	}
	if !w.ready {
		p.failing++
	}
	w.inflight = nil
	// Blamed singles first, then the untouched chunks, then older retries.
	d.retry = append(requeue, d.retry...)

	var startErr error
	if p.failing > maxStartFailures {
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
		if err := d.onFail(te); err != nil {
			return err
		}
	}
	return nil
}
