package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// Defaults for the zero fields of a Config.
const (
	DefaultInFlight   = 2
	DefaultMaxRetries = 3
)

// reapGrace is how long the reader of a worker whose socket closed waits for
// it to exit on its own before killing it.
const reapGrace = 2 * time.Second

// closeGrace is how long Close lets workers finish the chunks they hold
// before it stops them with SIGTERM.
const closeGrace = 5 * time.Second

// Config describes a Pool.
type Config struct {
	// Role is the registered role every worker runs; its entry point serves
	// the pool's socket, usually WorkerMain(handler).
	Role string
	// Args are passed to the role.
	Args []string
	// Workers is the number of worker processes; it must be at least 1.
	Workers int
	// InFlight is how many chunks each worker may hold at once (the one it
	// is working on and those waiting in its socket). Zero means
	// DefaultInFlight.
	InFlight int
	// MaxRetries is how many worker deaths a task may be blamed for before
	// it fails with a *TaskError. Zero means DefaultMaxRetries.
	MaxRetries int
	// Stderr receives the workers' standard error; nil discards it (its
	// tail is still kept in each death's *procs.ChildError).
	Stderr io.Writer
}

// Event records a worker that died while the pool was running.
type Event struct {
	Time     time.Time `json:"time"`
	Slot     int       `json:"slot"`      // the worker's position in the pool
	PID      int       `json:"pid"`       // the pid it had
	ExitCode int       `json:"exit_code"` // its exit status, -1 if killed by a signal
	Signal   string    `json:"signal,omitempty"`
	Error    string    `json:"error,omitempty"`
	// Resent lists the input indexes of the tasks that were in flight on
	// the worker and were sent again.
	Resent []int `json:"resent"`
	// Blamed lists the tasks of the chunk it was working on, which each
	// counted a death (and are among Resent, unless they Failed).
	Blamed []int `json:"blamed"`
	// Failed lists the tasks that reached MaxRetries with this death.
	Failed []int `json:"failed,omitempty"`
	// TimedOut lists the task the worker reported running past the map's
	// TaskTimeout; the worker then exited with ExitHung.
	TimedOut []int `json:"timed_out,omitempty"`
	// Overdue is set when the parent killed the worker for holding a chunk
	// long past the timeout without a report (a backstop for a worker
	// whose watchdog could not run); the chunk is then blamed as for any
	// death.
	Overdue bool `json:"overdue,omitempty"`
	// Replacement is the pid of the worker started in its place, 0 if none.
	Replacement int `json:"replacement"`
}

// A Pool is a set of worker processes that run tasks. One map runs at a
// time; a second waits for the first. The methods Events, PIDs and Completed
// may be called from any goroutine at any time.
type Pool struct {
	cfg    Config
	ctx    context.Context // the workers' context
	cancel context.CancelFunc

	mu      sync.Mutex // held by a running map and by Close
	closed  bool
	workers []*worker     // by slot; replaced on death
	inbox   *inbox        // the readers' messages to the dispatcher
	quit    chan struct{} // closed when no map will read msgs again
	wg      sync.WaitGroup
	nextID  uint64 // chunk ids, across maps
	gen     uint64 // the running map's generation
	failing int    // workers in a row that died before serving

	completed atomic.Int64
	chunks    atomic.Int64 // chunks answered, across maps

	evmu     sync.Mutex
	events   []Event
	startups []time.Duration // spawn to hello, of every worker that said it
}

// worker is one child and the parent's view of what it holds. Its fields
// other than held belong to the goroutine that holds Pool.mu.
type worker struct {
	slot     int
	cmd      *procs.Cmd
	conn     *ipc.Conn
	sendq    chan chunkMsg   // to its writer goroutine; never full (see send)
	spare    chan *resultMsg // answers the map is done with, to receive into again
	closed   bool            // sendq is closed
	inflight []*chunk        // in the order sent: [0] is the one it works on
	dead     bool            // its death was handled
	broken   bool            // it broke the protocol or overran; it has been killed
	ready    bool            // it said hello: it is serving
	spawned  time.Time       // just before Start
	held     atomic.Int32    // len(inflight), for Busy

	// headSince is when inflight[0] became the chunk it works on (when it
	// was sent to an idle worker, or when the one before was answered).
	headSince time.Time
	// hung is the index in inflight[0] of the task the worker reported
	// running past its timeout, or -1.
	hung int
	// quitting is set when the worker reported a task hung in a chunk it
	// answered all the same (its watchdog fired as the task ended): it
	// exits with ExitHung, and nothing it holds is to blame.
	quitting bool
	// overdue is set when the parent killed it for holding inflight[0]
	// past the chunk's deadline.
	overdue bool
}

// reused returns an empty resultMsg for w's reader to receive into: one
// the map is done with, whose Results keeps its array for msgpack to
// decode into (a chunk's results are tens of KiB, and were a seventh of
// what a map allocated), or a new one.
func (w *worker) reused() *resultMsg {
	select {
	case res := <-w.spare:
		*res = resultMsg{Results: res.Results[:0]}
		return res
	default:
		return new(resultMsg)
	}
}

// maxReuse bounds the Results array of an answer kept for reuse: a
// worker's reader keeps up to InFlight+1 for the pool's life, and one
// answer may take a whole frame (16 MiB).
const maxReuse = maxChunkBytes

// reuse hands res back to w's reader once nothing refers to it or to its
// Results any more. It never blocks: a spare too many, or too large, is
// dropped.
func (w *worker) reuse(res *resultMsg) {
	if cap(res.Results) > maxReuse {
		return
	}
	select {
	case w.spare <- res:
	default:
	}
}

// closeSend ends w's writer goroutine once it has sent what is queued.
func (w *worker) closeSend() {
	if !w.closed {
		w.closed = true
		close(w.sendq)
	}
}

// message is what a worker's reader goroutine tells the dispatcher.
type message struct {
	w    *worker
	res  *resultMsg // a chunk's results, or nil when the worker died
	err  error      // the worker's exit (from Wait), when res is nil
	recv error      // why its socket stopped, when res is nil
}

// New starts a pool of cfg.Workers processes. The workers run until Close,
// or until ctx is done, which kills them.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	if cfg.Workers < 1 {
		return nil, fmt.Errorf("pool: %d workers: need at least 1", cfg.Workers)
	}
	if !procs.Registered(cfg.Role) {
		return nil, fmt.Errorf("pool: role %q is not registered", cfg.Role)
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultInFlight
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	p := &Pool{
		cfg:     cfg,
		inbox:   newInbox(),
		quit:    make(chan struct{}),
		workers: make([]*worker, cfg.Workers),
	}
	p.ctx, p.cancel = context.WithCancel(ctx)
	for i := range p.workers {
		w, err := p.start(i)
		if err != nil {
			p.stop()
			return nil, err
		}
		p.workers[i] = w
	}
	return p, nil
}

// start starts the worker for slot, its reader goroutine and its writer
// goroutine.
func (p *Pool) start(slot int) (*worker, error) {
	conn, f, err := ipc.Pair(ipc.Stream)
	if err != nil {
		return nil, fmt.Errorf("pool: worker %d: %w", slot, err)
	}
	cmd := procs.Command(p.ctx, p.cfg.Role, p.cfg.Args...)
	cmd.Index = slot
	cmd.SetFile(procs.FDControl, f) // closed here once the child has it
	cmd.Stderr = p.cfg.Stderr
	spawned := time.Now()
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("pool: start worker %d: %w", slot, err)
	}
	w := &worker{slot: slot, cmd: cmd, conn: conn, hung: -1, spawned: spawned}
	// The dispatcher sends a chunk only to a worker holding fewer than
	// InFlight, and every chunk in sendq is held: sendq never fills, and
	// the dispatcher never blocks on a worker.
	w.sendq = make(chan chunkMsg, p.cfg.InFlight)
	w.spare = make(chan *resultMsg, p.cfg.InFlight)
	p.wg.Go(func() { p.read(w) })
	p.wg.Go(func() { p.write(w) })
	return w, nil
}

// write sends w the chunks the dispatcher queues for it, and half-closes
// the socket when the queue is closed, which tells the worker to finish
// and exit. A failed send means the worker is gone or broken: it is killed,
// so that its reader reports the death, and the chunks are re-sent from
// there.
func (p *Pool) write(w *worker) {
	for m := range w.sendq {
		if err := w.conn.Send(&m); err != nil {
			w.cmd.Process().Kill()
			return
		}
	}
	w.conn.CloseWrite()
}

// read receives w's results and hands them to the dispatcher, without ever
// blocking on it; when the socket stops, it reaps the worker and reports
// its death. After quit it keeps reading and dropping results, so that the
// worker is never blocked on a full socket, until the worker exits.
func (p *Pool) read(w *worker) {
	var recvErr error
	for {
		res := w.reused()
		if err := w.conn.Recv(res); err != nil {
			recvErr = err
			break
		}
		if res.ID == helloID {
			// Timed here, not when a map gets to it.
			took := time.Since(w.spawned)
			p.evmu.Lock()
			p.startups = append(p.startups, took)
			p.evmu.Unlock()
		}
		p.post(message{w: w, res: res})
	}
	if !errors.Is(recvErr, io.EOF) {
		// Not a clean end of stream: the worker cannot be trusted to exit.
		w.cmd.Process().Kill()
	}
	t := time.AfterFunc(reapGrace, func() { w.cmd.Process().Kill() })
	err := w.cmd.Wait()
	t.Stop()
	w.conn.Close()
	p.post(message{w: w, err: err, recv: recvErr})
}

// post hands m to the dispatcher, or drops it once no map will read it.
func (p *Pool) post(m message) {
	select {
	case <-p.quit:
	default:
		p.inbox.put(m)
	}
}

// stop kills every worker and waits for all of them. It is called with mu
// held, or before the pool is shared.
func (p *Pool) stop() {
	p.closed = true
	p.cancel()
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	for _, w := range p.workers {
		if w != nil {
			w.closeSend()
		}
	}
	p.wg.Wait()
}

// Close stops the workers: each one sees EOF on its socket, finishes the
// chunks it holds and exits; those still running after a grace period are
// stopped with SIGTERM. Close waits for all of them. It must not be called
// from inside a MapUnordered callback.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	for _, w := range p.workers {
		if w != nil {
			w.closeSend()
		}
	}
	close(p.quit)
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		p.cancel()
		<-done
	}
	p.cancel()
	return nil
}

// Events returns the worker deaths recorded so far, oldest first.
func (p *Pool) Events() []Event {
	p.evmu.Lock()
	defer p.evmu.Unlock()
	return append([]Event(nil), p.events...)
}

// PIDs returns the process ids of the current workers, by slot. A slot
// whose worker died and was not replaced yet holds the dead one's pid.
func (p *Pool) PIDs() []int {
	p.evmu.Lock()
	defer p.evmu.Unlock()
	pids := make([]int, len(p.workers))
	for i, w := range p.workers {
		if w != nil {
			pids[i] = w.cmd.Pid()
		}
	}
	return pids
}

// Busy returns the process ids of the workers that hold chunks, in slot
// order: during a map, a worker to kill (for a demonstration or a test) that
// is sure to have work to re-send.
func (p *Pool) Busy() []int {
	p.evmu.Lock()
	defer p.evmu.Unlock()
	var pids []int
	for _, w := range p.workers {
		if w != nil && w.held.Load() > 0 {
			pids = append(pids, w.cmd.Pid())
		}
	}
	return pids
}

// Startups returns, for every worker that started serving so far
// (replacements included, in the order they did), the time from just
// before its Start to its hello: what a worker costs to start, apart from
// the work. Compare it with procs.MeasureSpawn, the floor of any child.
func (p *Pool) Startups() []time.Duration {
	p.evmu.Lock()
	defer p.evmu.Unlock()
	return append([]time.Duration(nil), p.startups...)
}

// Ready waits until every worker has started serving, replacing those
// that die first as a map does, so that a map started next measures the
// steady state only. It fails as a map does: ctx's cause, ErrClosed,
// ErrWorkersFailing.
func (p *Pool) Ready(ctx context.Context) error {
	nop := func(int, int, []byte, []error) error { return nil }
	d, err := p.begin(ctx, MapOptions{}, nop, func(*TaskError) error { return nil })
	if err != nil {
		return err
	}
	defer d.end()
	for {
		// Handle what has arrived already: a death, a hello.
		for {
			m, ok := p.inbox.take()
			if !ok {
				break
			}
			if err := d.handle(m); err != nil {
				return err
			}
		}
		ready := true
		for _, w := range p.workers {
			ready = ready && w.ready
		}
		if ready {
			return nil
		}
		if err := d.wait(); err != nil {
			return err
		}
	}
}

// Completed returns how many tasks the pool has delivered (succeeded or
// failed), across all maps.
func (p *Pool) Completed() int64 { return p.completed.Load() }

// Chunks returns how many chunks workers have answered, across all maps:
// with Completed, what a map's chosen chunk size came to.
func (p *Pool) Chunks() int64 { return p.chunks.Load() }

// Workers returns the number of worker slots.
func (p *Pool) Workers() int { return p.cfg.Workers }

// describe fills the exit fields of ev from a worker's Wait error.
func describe(ev *Event, err error) {
	var ce *procs.ChildError
	switch {
	case err == nil:
		ev.ExitCode = 0
	case errors.As(err, &ce):
		ev.ExitCode = ce.ExitCode
		if s, ok := ce.Signal.(syscall.Signal); ok {
			ev.Signal = unix.SignalName(s)
		}
		ev.Error = err.Error()
	default:
		ev.ExitCode = -1
		ev.Error = err.Error()
	}
}
