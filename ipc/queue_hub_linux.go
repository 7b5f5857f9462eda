package ipc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
)

// ErrQueueClosed is returned by Put once the queue's owner has called
// Queue.Close: no value is accepted after that.
var ErrQueueClosed = errors.New("queue closed")

// ErrQueueGone is matched (with errors.Is) by the errors of a QueueClient
// whose connection to the hub is lost: the owner shut the hub down or
// exited, or the client itself was closed.
var ErrQueueGone = errors.New("queue hub gone")

// maxGrant bounds what one endpoint may have asked for and not received.
const maxGrant = 4 * MaxQueueWindow

// maxJoins bounds the Joins one endpoint may have waiting.
const maxJoins = 1 << 16

// maxBacklog is how many bytes of replies may wait for an endpoint whose
// writer is stuck before the hub stops reading its requests.
const maxBacklog = 1 << 20

// A Queue is a bounded, joinable FIFO queue of values shared by processes.
// The process that creates it runs its hub: the buffer of at most capacity
// values and two goroutines per attached endpoint. Other processes reach it
// through a socket from Attach, opened there with OpenQueue; the owner
// reaches it through Client. See the package doc, section Queue.
type Queue struct {
	capacity int

	mu       sync.Mutex
	buf      valueFIFO
	puts     []pendingPut // values waiting for room, oldest first
	gets     []pendingGet // values asked for, in the order asked
	joins    []pendingJoin
	unfin    int // values put and not yet marked done
	stranded int // values handed to endpoints that died
	closed   bool
	shutdown bool
	conns    map[*hubConn]struct{}
	wg       sync.WaitGroup

	// Lanes (queue_lane_linux.go).
	lanesOn     bool
	laneSeq     uint32
	lanes       []*hubLane // lanes whose producer has not closed them
	lanesOpened int
	laneValues  int // values counted on lanes
	relayed     int // values handed through the hub
}

// QueueStats is a snapshot of a Queue's hub.
type QueueStats struct {
	Len         int  // values in the buffer
	PendingPuts int  // values waiting for room (their producers are blocked)
	PendingGets int  // values asked for by endpoints and not yet handed to them
	Unfinished  int  // values put and not yet marked done with TaskDone
	Clients     int  // attached endpoints still connected
	Stranded    int  // values handed to endpoints that went away without Close (see QueueClient.Close)
	Closed      bool // Close was called
	Relayed     int  // values handed to consumers through the hub, in all
	LaneValues  int  // values that went straight from a producer to a consumer on a lane, in all
	Lanes       int  // lanes opened, in all (see Queue.EnableLanes)
	OpenLanes   int  // lanes whose producer has not closed them yet
}

type pendingPut struct {
	hc   *hubConn
	c    *valueChunk // the hub's copy of the records
	recs []byte      // those not yet taken, in c
	n    int
}

type pendingGet struct {
	hc *hubConn
	n  int
}

type pendingJoin struct {
	hc  *hubConn
	seq uint64
}

// hubConn is the hub's side of one endpoint. Replies to it are queued in
// out, in the order the hub decided them (under Queue.mu), and written by
// whoever flushes: the endpoint's own read loop for its own replies, or its
// writer goroutine when another endpoint's request caused them. So a
// process that stops reading holds up only its own replies, never the hub.
type hubConn struct {
	nc   *net.UnixConn
	wake chan struct{} // kicks the writer goroutine
	done chan struct{} // closed when the endpoint is dropped

	// Under Queue.mu.
	grant  int        // values asked for and not yet handed (its entries in Queue.gets)
	handed int        // values handed to it, less those it gave back
	doneN  int        // TaskDones it sent
	held   int        // its puts waiting for room (its entries in Queue.puts)
	joins  int        // its entries in Queue.joins
	clean  bool       // it said goodbye
	laneOK bool       // it reads lanes (a consumer with a GetWindow)
	dry    bool       // it reads lanes and said it has nothing to take (qLaneDry)
	plane  *hubLane   // the lane it writes, if any
	clanes int        // lanes it reads whose producer has not closed them
	cread  []*hubLane // lanes closed by their producer, its final count not yet in

	outMu    sync.Mutex
	out      outBuf
	outFiles []*os.File // to go with the next write (lane sockets)
	spare    []byte
	writing  bool       // someone is in flushOut's write loop
	wrote    *sync.Cond // on outMu: broadcast when a write ends
}

// flushOut writes every queued reply, unless another goroutine is already
// doing so (it writes what is queued meanwhile too, so nothing is left).
func (hc *hubConn) flushOut() {
	hc.outMu.Lock()
	if hc.writing {
		hc.outMu.Unlock()
		return
	}
	hc.writing = true
	for hc.out.len() > 0 {
		b := hc.out.take(hc.spare)
		files := hc.outFiles
		hc.outFiles = nil
		hc.outMu.Unlock()
		err := hc.writeOut(b, files) // an error means the endpoint is gone: its read loop drops it
		hc.outMu.Lock()
		hc.spare = b[:0]
		hc.wrote.Broadcast()
		if err != nil {
			hc.out.take(hc.out.b)
			for _, f := range hc.outFiles {
				f.Close()
			}
			hc.outFiles = nil
			break
		}
	}
	hc.writing = false
	hc.wrote.Broadcast()
	hc.outMu.Unlock()
}

// waitBacklog waits while more than maxBacklog bytes of replies wait for a
// write in progress: the endpoint's read loop calls it, so that a peer that
// sends requests and reads no replies is no longer read.
func (hc *hubConn) waitBacklog() {
	hc.outMu.Lock()
	for hc.writing && hc.out.len() > maxBacklog {
		hc.wrote.Wait()
	}
	hc.outMu.Unlock()
}

// writer flushes replies that other endpoints' requests caused.
func (hc *hubConn) writer() {
	for {
		select {
		case <-hc.wake:
			hc.flushOut()
		case <-hc.done:
			return
		}
	}
}

// touched lists the endpoints that have replies queued by one request.
type touched []*hubConn

func (t *touched) add(hc *hubConn) {
	for _, o := range *t {
		if o == hc {
			return
		}
	}
	*t = append(*t, hc)
}

// send gets the queued replies written: self's (the connection whose read
// loop is calling) right here, the others' by their writer goroutines, so
// that a stuck peer cannot block this loop.
func (t *touched) send(self *hubConn) {
	for i, hc := range *t {
		if hc == self {
			hc.flushOut()
		} else {
			select {
			case hc.wake <- struct{}{}:
			default: // already kicked
			}
		}
		(*t)[i] = nil
	}
	*t = (*t)[:0]
}

// NewQueue returns a queue that holds at most capacity values, which must
// be at least 1. Call Shutdown when done with it.
func NewQueue(capacity int) (*Queue, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("new queue: capacity %d, want at least 1", capacity)
	}
	return &Queue{capacity: capacity, conns: make(map[*hubConn]struct{})}, nil
}

// Capacity returns the most values the queue buffers.
func (q *Queue) Capacity() int { return q.capacity }

// Attach returns a new endpoint of the queue as a socket file for a child
// process (procs.Cmd.ExtraFiles), which opens it with OpenQueue. Close the
// file right after starting the child.
func (q *Queue) Attach() (*os.File, error) {
	mine, theirs, err := socketPair()
	if err != nil {
		return nil, fmt.Errorf("attach queue: %w", err)
	}
	if err := q.serve(mine); err != nil {
		mine.Close()
		theirs.Close()
		return nil, err
	}
	return theirs, nil
}

// Client returns an endpoint of the queue for the owning process itself.
// It talks to the hub over a socket pair like any other endpoint.
func (q *Queue) Client(opt QueueOptions) (*QueueClient, error) {
	f, err := q.Attach()
	if err != nil {
		return nil, err
	}
	return OpenQueue(f, opt)
}

func (q *Queue) serve(nc *net.UnixConn) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return fmt.Errorf("attach queue: %w", ErrQueueGone)
	}
	hc := &hubConn{nc: nc, wake: make(chan struct{}, 1), done: make(chan struct{})}
	hc.wrote = sync.NewCond(&hc.outMu)
	q.conns[hc] = struct{}{}
	q.wg.Go(func() { q.readLoop(hc) })
	q.wg.Go(hc.writer)
	return nil
}

// Close closes the queue for puts: pending and later puts fail with
// ErrQueueClosed, consumers get what is left in the buffer and then io.EOF.
// The hub keeps serving until Shutdown.
func (q *Queue) Close() error {
	var t touched
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		for _, p := range q.puts {
			p.hc.held -= p.n
			q.reply(p.hc, &t, func(o *outBuf) { o.addCount(qRefused, p.n, false) })
		}
		clear(q.puts)
		q.puts = q.puts[:0]
		q.laneClose(&t)
		q.pump(&t)
	}
	q.mu.Unlock()
	t.send(nil)
	return nil
}

// Shutdown hangs up on every endpoint (their calls then fail with
// ErrQueueGone), drops what is buffered, and waits for the hub's
// goroutines to end. The queue cannot be used afterwards.
func (q *Queue) Shutdown() error {
	q.mu.Lock()
	q.shutdown = true
	for hc := range q.conns {
		hc.nc.Close()
	}
	q.mu.Unlock()
	q.wg.Wait()
	q.mu.Lock()
	q.buf.reset()
	q.puts, q.gets, q.joins = nil, nil, nil
	for hc := range q.conns {
		for _, f := range hc.outFiles {
			f.Close()
		}
		hc.outFiles = nil
	}
	q.mu.Unlock()
	return nil
}

// Stats returns a snapshot of the hub's state.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := QueueStats{
		Len:        q.buf.n,
		Unfinished: q.unfin,
		Clients:    len(q.conns),
		Stranded:   q.stranded,
		Closed:     q.closed,
		Relayed:    q.relayed,
		LaneValues: q.laneValues,
		Lanes:      q.lanesOpened,
		OpenLanes:  len(q.lanes),
	}
	for _, p := range q.puts {
		st.PendingPuts += p.n
	}
	for _, g := range q.gets {
		st.PendingGets += g.n
	}
	return st
}

// readLoop serves one endpoint: it handles every request it finds
// buffered, then sends the replies they caused.
func (q *Queue) readLoop(hc *hubConn) {
	var t touched
	defer q.drop(hc, &t)
	fr := newFrameReader(hc.nc, readBuf)
	for {
		op, p, err := fr.next()
		if err != nil {
			return // EOF, or the connection broke or was shut down
		}
		q.mu.Lock()
		err = q.handle(hc, op, p, &t)
		q.mu.Unlock()
		if err != nil {
			return // a peer that breaks the protocol is dropped
		}
		if !fr.buffered() {
			t.send(hc)
			hc.waitBacklog()
		}
	}
}

// drop forgets a disconnected endpoint: its waiting puts are discarded
// (their producer never had them acknowledged) and so are its asks and
// joins. Values handed to an endpoint that did not say goodbye are counted
// as stranded, and as done for Join: nobody can mark them done any more.
func (q *Queue) drop(hc *hubConn, t *touched) {
	hc.nc.Close()
	close(hc.done)
	q.mu.Lock()
	// Lane sockets that never went out; none is added once hc is gone
	// from conns and gets (under q.mu), but one may have been until now.
	hc.outMu.Lock()
	for _, f := range hc.outFiles {
		f.Close()
	}
	hc.outFiles = nil
	hc.outMu.Unlock()
	delete(q.conns, hc)
	q.puts = slices.DeleteFunc(q.puts, func(p pendingPut) bool { return p.hc == hc })
	q.unwait(hc)
	q.joins = slices.DeleteFunc(q.joins, func(j pendingJoin) bool { return j.hc == hc })
	q.laneDrop(hc, t)
	if !hc.clean && hc.handed > 0 {
		q.stranded += hc.handed
		q.finish(min(q.unfin, max(0, hc.handed-hc.doneN)), t)
	}
	q.pump(t)
	q.mu.Unlock()
	t.send(nil)
}

// reply queues a reply to hc; q.mu is held.
func (q *Queue) reply(hc *hubConn, t *touched, add func(*outBuf)) {
	hc.outMu.Lock()
	add(&hc.out)
	hc.outMu.Unlock()
	t.add(hc)
}

// handle applies one request; q.mu is held. Replies are queued on their
// connections, to be written once the lock is released. An error means hc
// broke the protocol.
func (q *Queue) handle(hc *hubConn, op byte, p []byte, t *touched) error {
	switch op {
	case qPuts:
		n, recs, err := parseRecords(p)
		if err != nil {
			return err
		}
		if err := q.put(hc, recs, n, t); err != nil {
			return err
		}
		q.laneTick(t) // values in the buffer: a dry lane consumer wants them
	case qGrant:
		n, err := parseCount(p)
		if err != nil {
			return err
		}
		if hc.grant+n > maxGrant {
			return fmt.Errorf("asked for %d values at once: %w", hc.grant+n, errBadFrame)
		}
		if n > 0 {
			hc.dry = false // it took values: not dry
			hc.grant += n
			if k := len(q.gets); k > 0 && q.gets[k-1].hc == hc {
				q.gets[k-1].n += n
			} else {
				q.gets = append(q.gets, pendingGet{hc, n})
			}
			q.laneAfterAsk(hc, t)
			q.pump(t)
		}
	case qRevoke:
		n := hc.grant
		q.unwait(hc)
		q.laneRevoke(hc, t)
		q.reply(hc, t, func(o *outBuf) { o.addCount(qRevoked, n, false) })
	case qCancelPuts:
		n := 0
		q.puts = slices.DeleteFunc(q.puts, func(p pendingPut) bool {
			if p.hc == hc {
				n += p.n
				hc.held -= p.n
				return true
			}
			return false
		})
		q.reply(hc, t, func(o *outBuf) { o.addCount(qCancelled, n, false) })
	case qTaskDone:
		n, err := parseCount(p)
		if err != nil {
			return err
		}
		hc.doneN += n
		if n > q.unfin {
			q.reply(hc, t, func(o *outBuf) { o.addCount(qError, qErrTooManyTaskDone, false) })
			n = q.unfin
		}
		q.finish(n, t)
	case qJoin:
		seq, err := parseSeq(p)
		if err != nil {
			return err
		}
		if q.unfin == 0 {
			q.reply(hc, t, func(o *outBuf) { o.addSeq(qJoined, seq) })
		} else {
			if hc.joins >= maxJoins {
				return fmt.Errorf("more than %d joins waiting: %w", maxJoins, errBadFrame)
			}
			hc.joins++
			q.joins = append(q.joins, pendingJoin{hc, seq})
		}
	case qCancelJoin:
		seq, err := parseSeq(p)
		if err != nil {
			return err
		}
		q.joins = slices.DeleteFunc(q.joins, func(j pendingJoin) bool {
			if j.hc == hc && j.seq == seq {
				hc.joins--
				return true
			}
			return false
		})
	case qRequeue:
		n, recs, err := parseRecords(p)
		if err != nil {
			return err
		}
		if n > hc.handed {
			return fmt.Errorf("gave back %d values, holds %d: %w", n, hc.handed, errBadFrame)
		}
		q.buf.pushFront(recs, n)
		hc.handed -= n
		q.pump(t)
	case qBye:
		// Nothing is handed to it any more: what it asked for and was not
		// sent would be lost with the connection.
		hc.clean = true
		q.unwait(hc)
	case qLaneAsk, qLaneStarved, qLaneWrote, qLaneDone:
		return q.laneProducer(hc, op, p, t)
	case qLaneRead, qLaneReadEnd:
		return q.laneConsumer(hc, op, p, t)
	case qLaneOK:
		hc.laneOK = true
	case qLaneDry:
		hc.dry = true
		q.laneTick(t)
	default:
		q.reply(hc, t, func(o *outBuf) { o.addCount(qError, qErrUnknownOp, false) })
	}
	return nil
}

// put takes n values from producer hc: handed straight to endpoints that
// asked if the buffer is empty, into the buffer as far as there is room,
// the rest kept waiting (unacknowledged) until there is. An error means hc
// has more puts waiting than any PutWindow allows.
func (q *Queue) put(hc *hubConn, recs []byte, n int, t *touched) error {
	if q.closed {
		q.reply(hc, t, func(o *outBuf) { o.addCount(qRefused, n, false) })
		return nil
	}
	taken := 0
	if len(q.puts) == 0 {
		for n > 0 && q.buf.n == 0 && len(q.gets) > 0 {
			size, k := len(recs), n
			if q.gets[0].n < n {
				size, k = recsPrefix(recs, q.gets[0].n)
			}
			q.give(recs[:size], k, t)
			recs, n, taken = recs[size:], n-k, taken+k
		}
		if room := q.capacity - q.buf.n; n > 0 && room > 0 {
			size, k := len(recs), n
			if room < n {
				size, k = recsPrefix(recs, room)
			}
			q.buf.push(recs[:size], k)
			recs, n, taken = recs[size:], n-k, taken+k
		}
	}
	if taken > 0 {
		q.unfin += taken
		q.reply(hc, t, func(o *outBuf) { o.addCount(qAck, taken, true) })
	}
	if n > 0 {
		if hc.held+n > MaxQueueWindow {
			return fmt.Errorf("%d puts waiting, over the largest window: %w", hc.held+n, errBadFrame)
		}
		hc.held += n
		c := q.buf.hold(recs)
		q.puts = append(q.puts, pendingPut{hc, c, c.b, n})
	}
	return nil
}

// give hands k values to the endpoint that asked first.
func (q *Queue) give(recs []byte, k int, t *touched) {
	g := &q.gets[0]
	q.reply(g.hc, t, func(o *outBuf) { o.addRecords(qItems, recs, k) })
	g.hc.grant -= k
	g.hc.handed += k
	q.relayed += k
	if g.n -= k; g.n == 0 {
		q.gets[0] = pendingGet{}
		q.gets = q.gets[1:]
	}
}

// pump moves values as far as they can go: from the buffer to endpoints
// that asked, from waiting puts into the buffer; and tells the endpoints
// still asking once the queue is closed and empty.
func (q *Queue) pump(t *touched) {
	for {
		moved := false
		for len(q.gets) > 0 && q.buf.n > 0 {
			recs, k := q.buf.peek(q.gets[0].n)
			q.give(recs, k, t)
			q.buf.drop(len(recs), k)
			moved = true
		}
		for len(q.puts) > 0 && q.buf.n < q.capacity {
			p := &q.puts[0]
			size, k := len(p.recs), p.n
			if room := q.capacity - q.buf.n; room < p.n {
				size, k = recsPrefix(p.recs, room)
			}
			p.hc.held -= k
			q.unfin += k
			q.reply(p.hc, t, func(o *outBuf) { o.addCount(qAck, k, true) })
			if k == p.n {
				q.buf.adopt(p.c, p.recs, k) // the held chunk moves in, no second copy
				q.puts[0] = pendingPut{}
				q.puts = q.puts[1:]
			} else {
				q.buf.push(p.recs[:size], k)
				p.recs, p.n = p.recs[size:], p.n-k
			}
			moved = true
		}
		if !moved {
			break
		}
	}
	q.laneTick(t)
	if q.closed && q.buf.n == 0 {
		// A consumer with an open lane gets EOF once its producer closed
		// it, after the lane's values.
		for i := 0; i < len(q.gets); {
			c := q.gets[i].hc
			if c.clanes > 0 {
				i++
				continue
			}
			q.unwait(c)
			q.reply(c, t, func(o *outBuf) { o.addEmpty(qEOF) })
		}
	}
}

// unwait drops hc's asks.
func (q *Queue) unwait(hc *hubConn) {
	if hc.grant > 0 {
		hc.grant = 0
		q.gets = slices.DeleteFunc(q.gets, func(g pendingGet) bool { return g.hc == hc })
	}
}

// finish marks n values done, and answers the joins once none is left.
func (q *Queue) finish(n int, t *touched) {
	q.unfin -= n
	if q.unfin != 0 {
		return
	}
	for _, j := range q.joins {
		j.hc.joins--
		q.reply(j.hc, t, func(o *outBuf) { o.addSeq(qJoined, j.seq) })
	}
	clear(q.joins)
	q.joins = q.joins[:0]
}
