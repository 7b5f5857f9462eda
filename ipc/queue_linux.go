package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// ErrQueueClosed is returned by Put once the queue's owner has called
// Queue.Close: no value is accepted after that.
var ErrQueueClosed = errors.New("queue closed")

// ErrQueueGone is matched (with errors.Is) by the errors of a QueueClient
// whose connection to the hub is lost: the owner shut the hub down or
// exited, or the client itself was closed.
var ErrQueueGone = errors.New("queue hub gone")

// errTooManyTaskDone is what the hub reports when TaskDone is called more
// times than values were taken.
var errTooManyTaskDone = errors.New("TaskDone called more times than there were values")

// The operations of the queue protocol. A client sends put, get, cancel,
// taskDone and join; the hub answers each put, get and join exactly once
// (ack, closed, item, eof, joined, or cancelled after a cancel that caught
// the request still waiting).
const (
	opPut      = 1
	opGet      = 2
	opCancel   = 3
	opTaskDone = 4
	opJoin     = 5
	opRequeue  = 6 // a prefetched value given back, to the front of the queue

	opAck       = 10
	opItem      = 11
	opEOF       = 12
	opJoined    = 13
	opCancelled = 14
	opClosed    = 15
	opError     = 16 // Seq 0: a misuse the client reports on its next TaskDone
)

// queueMsg is one message of the queue protocol: [Op, Seq, Data] as a
// msgpack array. Data is a value encoded with msgpack. It encodes and decodes
// itself so that the hot path does not go through reflection.
type queueMsg struct {
	Op   uint8
	Seq  uint64
	Data []byte
}

var (
	_ msgpack.CustomEncoder = (*queueMsg)(nil)
	_ msgpack.CustomDecoder = (*queueMsg)(nil)
)

func (m *queueMsg) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(3); err != nil {
		return err
	}
	if err := enc.EncodeUint8(m.Op); err != nil {
		return err
	}
	if err := enc.EncodeUint(m.Seq); err != nil {
		return err
	}
	return enc.EncodeBytes(m.Data)
}

func (m *queueMsg) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 3 {
		return fmt.Errorf("queue message: array of %d, want 3", n)
	}
	if m.Op, err = dec.DecodeUint8(); err != nil {
		return err
	}
	if m.Seq, err = dec.DecodeUint64(); err != nil {
		return err
	}
	m.Data, err = dec.DecodeBytes()
	return err
}

// moreInFrame reports whether the frame being received holds values not yet
// received. Only the receiving goroutine may call it.
func (c *Conn) moreInFrame() bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.rd.Len() > 0
}

// A Queue is a bounded, joinable FIFO queue of msgpack values shared by
// processes. The process that creates it runs its hub: the buffer of at most
// capacity values and a goroutine per attached endpoint. Other processes
// reach it through a socket from Attach, opened there with OpenQueue; the
// owner reaches it through Client.
//
// Flow control is by credits, not by socket buffers: the hub takes a Put
// only when the buffer has room, and until then keeps the put's
// acknowledgement, so the producer's Put stays blocked. A consumer that
// falls capacity values behind therefore stops its producers, whatever the
// size of the socket buffers.
//
// An endpoint whose process dies is dropped: its waiting puts are
// discarded (their Put never returned), and values it had taken are gone
// with it. Replies are written outside the hub's lock, and those one
// endpoint's request causes for another are written by the other's own
// writer goroutine, so an endpoint process that stops reading (SIGSTOP, a
// debugger) holds up only itself.
type Queue struct {
	capacity int

	mu       sync.Mutex
	items    [][]byte // FIFO of encoded values, at most capacity
	puts     []pendingReq
	gets     []pendingReq
	joins    []pendingReq
	unfin    int // values put and not yet marked done
	closed   bool
	shutdown bool
	conns    map[*hubConn]struct{}
	wg       sync.WaitGroup
}

// QueueStats is a snapshot of a Queue's hub.
type QueueStats struct {
	Len         int // values in the buffer
	PendingPuts int // puts waiting for room (their producers are blocked)
	PendingGets int // gets waiting for a value
	Unfinished  int // values put and not yet marked done with TaskDone
	Clients     int // attached endpoints still connected
	Closed      bool
}

// hubConn is the hub's side of one endpoint. Replies to it are queued in
// out, in the order the hub decided them (under Queue.mu), and written by
// whoever flushes: the endpoint's own read loop for its own replies, or its
// writer goroutine when another endpoint's request caused them. So a
// process that stops reading holds up only its own replies, never the hub.
type hubConn struct {
	c    *Conn
	wake chan struct{} // kicks the writer goroutine
	done chan struct{} // closed when the endpoint is dropped

	outMu   sync.Mutex
	out     []queueMsg // replies not yet written
	spare   []queueMsg
	writing bool // someone is in flushOut's write loop
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
	for len(hc.out) > 0 {
		batch := hc.out
		hc.out = hc.spare[:0]
		hc.outMu.Unlock()
		for i := range batch {
			hc.c.Buffer(&batch[i]) // an error means the endpoint is gone: its read loop drops it
		}
		hc.c.Flush()
		clear(batch)
		hc.outMu.Lock()
		hc.spare = batch
	}
	hc.writing = false
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

type pendingReq struct {
	hc   *hubConn
	seq  uint64
	data []byte
}

type hubReply struct {
	hc *hubConn
	m  queueMsg
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
	mine, theirs, err := Pair(Stream)
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
func (q *Queue) Client() (*QueueClient, error) {
	f, err := q.Attach()
	if err != nil {
		return nil, err
	}
	return OpenQueue(f)
}

func (q *Queue) serve(c *Conn) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return fmt.Errorf("attach queue: %w", ErrQueueGone)
	}
	hc := &hubConn{c: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	q.conns[hc] = struct{}{}
	q.wg.Add(2)
	go func() {
		defer q.wg.Done()
		q.readLoop(hc)
	}()
	go func() {
		defer q.wg.Done()
		hc.writer()
	}()
	return nil
}

// Close closes the queue for puts: pending and later puts fail with
// ErrQueueClosed, consumers get what is left in the buffer and then io.EOF.
// The hub keeps serving until Shutdown.
func (q *Queue) Close() error {
	q.mu.Lock()
	var out []hubReply
	if !q.closed {
		q.closed = true
		for _, p := range q.puts {
			out = append(out, hubReply{p.hc, queueMsg{Op: opClosed, Seq: p.seq}})
		}
		q.puts = nil
		if len(q.items) == 0 {
			for _, g := range q.gets {
				out = append(out, hubReply{g.hc, queueMsg{Op: opEOF, Seq: g.seq}})
			}
			q.gets = nil
		}
	}
	encode(out)
	q.mu.Unlock()
	send(out, nil)
	return nil
}

// Shutdown hangs up on every endpoint (their calls then fail with
// ErrQueueGone), drops what is buffered, and waits for the hub's
// goroutines to end. The queue cannot be used afterwards.
func (q *Queue) Shutdown() error {
	q.mu.Lock()
	q.shutdown = true
	for hc := range q.conns {
		hc.c.Close()
	}
	q.mu.Unlock()
	q.wg.Wait()
	q.mu.Lock()
	q.items, q.puts, q.gets, q.joins = nil, nil, nil, nil
	q.mu.Unlock()
	return nil
}

// Stats returns a snapshot of the hub's state.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return QueueStats{
		Len:         len(q.items),
		PendingPuts: len(q.puts),
		PendingGets: len(q.gets),
		Unfinished:  q.unfin,
		Clients:     len(q.conns),
		Closed:      q.closed,
	}
}

// readLoop serves one endpoint: it handles every request of a frame, then
// sends the replies that they caused, batched per connection.
func (q *Queue) readLoop(hc *hubConn) {
	defer q.drop(hc)
	var m queueMsg
	var out []hubReply
	for {
		if err := hc.c.Recv(&m); err != nil {
			return // EOF, or the connection broke or was shut down
		}
		q.mu.Lock()
		mark := len(out)
		out = q.handle(hc, &m, out)
		encode(out[mark:])
		q.mu.Unlock()
		if hc.c.moreInFrame() {
			continue
		}
		send(out, hc)
		clear(out)
		out = out[:0]
	}
}

// drop forgets a disconnected endpoint: its waiting puts are discarded
// (their producer never had them acknowledged) and so are its gets and joins.
func (q *Queue) drop(hc *hubConn) {
	hc.c.Close()
	close(hc.done)
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.conns, hc)
	keep := func(l []pendingReq) []pendingReq {
		n := 0
		for _, p := range l {
			if p.hc != hc {
				l[n] = p
				n++
			}
		}
		clear(l[n:])
		return l[:n]
	}
	q.puts = keep(q.puts)
	q.gets = keep(q.gets)
	q.joins = keep(q.joins)
}

// handle applies one request; q.mu is held. Replies are appended to out,
// to be sent once the lock is released.
func (q *Queue) handle(hc *hubConn, m *queueMsg, out []hubReply) []hubReply {
	switch m.Op {
	case opPut:
		switch {
		case q.closed:
			out = append(out, hubReply{hc, queueMsg{Op: opClosed, Seq: m.Seq}})
		case len(q.gets) > 0: // the buffer is empty: hand it over
			g := q.gets[0]
			q.gets = q.gets[1:]
			q.unfin++
			out = append(out,
				hubReply{g.hc, queueMsg{Op: opItem, Seq: g.seq, Data: m.Data}},
				hubReply{hc, queueMsg{Op: opAck, Seq: m.Seq}})
		case len(q.puts) == 0 && len(q.items) < q.capacity:
			q.items = append(q.items, m.Data)
			q.unfin++
			out = append(out, hubReply{hc, queueMsg{Op: opAck, Seq: m.Seq}})
		default: // full: the ack waits for room, and so does the producer
			q.puts = append(q.puts, pendingReq{hc, m.Seq, m.Data})
		}
	case opGet:
		switch {
		case len(q.items) > 0:
			data := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			out = append(out, hubReply{hc, queueMsg{Op: opItem, Seq: m.Seq, Data: data}})
			if len(q.puts) > 0 { // room for the oldest waiting put
				p := q.puts[0]
				q.puts[0] = pendingReq{}
				q.puts = q.puts[1:]
				q.items = append(q.items, p.data)
				q.unfin++
				out = append(out, hubReply{p.hc, queueMsg{Op: opAck, Seq: p.seq}})
			}
		case q.closed:
			out = append(out, hubReply{hc, queueMsg{Op: opEOF, Seq: m.Seq}})
		default:
			q.gets = append(q.gets, pendingReq{hc: hc, seq: m.Seq})
		}
	case opCancel:
		for _, l := range []*[]pendingReq{&q.puts, &q.gets, &q.joins} {
			for i, p := range *l {
				if p.hc == hc && p.seq == m.Seq {
					*l = append((*l)[:i], (*l)[i+1:]...)
					return append(out, hubReply{hc, queueMsg{Op: opCancelled, Seq: m.Seq}})
				}
			}
		}
		// Not waiting: its answer is already on its way.
	case opTaskDone:
		if q.unfin == 0 {
			return append(out, hubReply{hc, queueMsg{Op: opError, Data: []byte(errTooManyTaskDone.Error())}})
		}
		q.unfin--
		if q.unfin == 0 {
			for _, j := range q.joins {
				out = append(out, hubReply{j.hc, queueMsg{Op: opJoined, Seq: j.seq}})
			}
			q.joins = q.joins[:0]
		}
	case opRequeue:
		if len(q.gets) > 0 {
			g := q.gets[0]
			q.gets = q.gets[1:]
			return append(out, hubReply{g.hc, queueMsg{Op: opItem, Seq: g.seq, Data: m.Data}})
		}
		q.items = append(q.items, nil)
		copy(q.items[1:], q.items)
		q.items[0] = m.Data
	case opJoin:
		if q.unfin == 0 {
			return append(out, hubReply{hc, queueMsg{Op: opJoined, Seq: m.Seq}})
		}
		q.joins = append(q.joins, pendingReq{hc: hc, seq: m.Seq})
	default:
		return append(out, hubReply{hc, queueMsg{Op: opError, Data: fmt.Appendf(nil, "unknown queue operation %d", m.Op)}})
	}
	return out
}

// encode queues replies on their connections. It is called with q.mu
// held, so that each connection gets its replies in the order the hub
// decided them, whichever goroutine later writes them out. (Two goroutines
// writing their own replies after unlocking could swap two values of one
// producer on their way to one consumer.)
func encode(out []hubReply) {
	for i := range out {
		hc := out[i].hc
		hc.outMu.Lock()
		hc.out = append(hc.out, out[i].m)
		hc.outMu.Unlock()
	}
}

// send gets the queued replies written, once per connection: self's (the
// connection whose read loop is calling) right here, the others' by their
// writer goroutines, so that a stuck peer cannot block this loop.
func send(out []hubReply, self *hubConn) {
	for i, r := range out {
		seen := false
		for _, o := range out[:i] {
			if o.hc == r.hc {
				seen = true
				break
			}
		}
		switch {
		case seen:
		case r.hc == self:
			self.flushOut()
		default:
			select {
			case r.hc.wake <- struct{}{}:
			default: // already kicked
			}
		}
	}
}

// A QueueClient is one endpoint of a Queue, in any process. Its methods may
// be called from several goroutines at once.
type QueueClient struct {
	c      *Conn
	done   chan struct{} // closed when the reader ends
	window chan struct{} // credits for windowed puts; nil: Put waits for its ack
	batch  bool          // windowed puts are buffered, not written one by one

	mu      sync.Mutex
	seq     uint64
	waiting map[uint64]chan queueMsg // nil channel: a windowed put
	err     error                    // why the reader ended
	sticky  error                    // a windowed put refused
	misuse  error                    // a misuse the hub reported, for TaskDone
	flushed *sync.Cond               // signalled when windowed puts are acked
	inPuts  int                      // windowed puts not yet acked

	// Prefetching gets (SetGetWindow).
	getWindow int
	prefetch  map[uint64]struct{} // gets sent ahead, not yet answered
	ready     [][]byte            // values they brought, oldest first
	eof       bool                // one of them brought io.EOF
	avail     chan struct{}       // signalled when ready or eof change
}

// OpenQueue returns the queue endpoint on f, a file from Queue.Attach
// (in a child, inherited through procs.Cmd.ExtraFiles). It takes f over.
func OpenQueue(f *os.File) (*QueueClient, error) {
	c, err := FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	return NewQueueClient(c), nil
}

// NewQueueClient returns the queue endpoint on c, a Conn over a socket from
// Queue.Attach. The client owns c.
func NewQueueClient(c *Conn) *QueueClient {
	qc := &QueueClient{
		c: c, done: make(chan struct{}), waiting: make(map[uint64]chan queueMsg),
		prefetch: make(map[uint64]struct{}), avail: make(chan struct{}, 1),
	}
	qc.flushed = sync.NewCond(&qc.mu)
	go qc.readLoop()
	return qc
}

// SetPutWindow lets up to w puts be on their way before Put waits: Put then
// returns once the value is sent, not once the hub took it, and Flush waits
// for the hub to have taken them all. A refused put (the queue was closed)
// is reported by a later Put or Flush. Backpressure still holds: a producer
// runs at most w values ahead of the buffer's room. With w <= 1 (the
// default) every Put waits for its acknowledgement. Call it before any Put.
func (qc *QueueClient) SetPutWindow(w int) {
	if w <= 1 {
		qc.window = nil
		return
	}
	qc.window = make(chan struct{}, w)
}

// SetPutBatching makes windowed puts (SetPutWindow) go out in batches: a
// Put adds its value to a frame, written when the window is full, when the
// frame reaches 64 KiB, or on Flush or Close. It saves a system call per
// value, at a price: a value may wait in this process until one of those
// happens, so a producer that pauses should call Flush. Call it before any
// Put.
func (qc *QueueClient) SetPutBatching(on bool) { qc.batch = on }

func (qc *QueueClient) readLoop() {
	var m queueMsg
	var err error
	for {
		m = queueMsg{}
		if err = qc.c.Recv(&m); err != nil {
			break
		}
		qc.mu.Lock()
		if m.Op == opError {
			if string(m.Data) == errTooManyTaskDone.Error() {
				qc.misuse = errTooManyTaskDone
			} else {
				qc.misuse = errors.New(string(m.Data))
			}
			qc.mu.Unlock()
			continue
		}
		if _, ok := qc.prefetch[m.Seq]; ok {
			delete(qc.prefetch, m.Seq)
			switch m.Op {
			case opItem:
				qc.ready = append(qc.ready, m.Data)
			case opEOF:
				qc.eof = true
			}
			qc.mu.Unlock()
			select {
			case qc.avail <- struct{}{}:
			default:
			}
			continue
		}
		ch, ok := qc.waiting[m.Seq]
		delete(qc.waiting, m.Seq)
		if ok && ch == nil { // a windowed put
			if m.Op == opClosed && qc.sticky == nil {
				qc.sticky = fmt.Errorf("queue put: %w", ErrQueueClosed)
			}
			qc.inPuts--
			qc.flushed.Broadcast()
			qc.mu.Unlock()
			<-qc.window
			continue
		}
		qc.mu.Unlock()
		if ok {
			ch <- m
		}
	}
	if err == io.EOF {
		err = ErrQueueGone
	} else {
		err = fmt.Errorf("%w: %v", ErrQueueGone, err)
	}
	qc.mu.Lock()
	qc.err = err
	qc.flushed.Broadcast()
	qc.mu.Unlock()
	close(qc.done)
}

// request sends op and returns the sequence number and the channel its
// answer will arrive on (nil for a windowed put).
func (qc *QueueClient) request(op uint8, data []byte, windowed bool) (uint64, chan queueMsg, error) {
	var ch chan queueMsg
	if !windowed {
		ch = make(chan queueMsg, 1)
	}
	qc.mu.Lock()
	if qc.err != nil {
		err := qc.err
		qc.mu.Unlock()
		return 0, nil, err
	}
	qc.seq++
	seq := qc.seq
	qc.waiting[seq] = ch
	if windowed {
		qc.inPuts++
	}
	qc.mu.Unlock()
	send := qc.c.Send
	if windowed && qc.batch {
		send = qc.c.Buffer
	}
	if err := send(&queueMsg{Op: op, Seq: seq, Data: data}); err != nil {
		qc.mu.Lock()
		if _, ok := qc.waiting[seq]; ok {
			delete(qc.waiting, seq)
			if windowed {
				qc.inPuts--
			}
		}
		qc.mu.Unlock()
		return 0, nil, fmt.Errorf("%w: %v", ErrQueueGone, err)
	}
	return seq, ch, nil
}

// await waits for the answer to request seq. If ctx ends first it asks the
// hub to cancel the request and waits for the hub's final word: the answer
// (the request won the race) or opCancelled, reported as ctx's error.
func (qc *QueueClient) await(ctx context.Context, seq uint64, ch chan queueMsg) (queueMsg, error) {
	select {
	case m := <-ch:
		return m, nil
	case <-qc.done:
		return qc.late(ch)
	case <-ctx.Done():
	}
	if err := qc.c.Send(&queueMsg{Op: opCancel, Seq: seq}); err != nil {
		return queueMsg{}, fmt.Errorf("%w: %v", ErrQueueGone, err)
	}
	select {
	case m := <-ch:
		if m.Op == opCancelled {
			return m, context.Cause(ctx)
		}
		return m, nil
	case <-qc.done:
		return qc.late(ch)
	}
}

// late returns an answer that arrived just before the reader ended, or the
// reader's error.
func (qc *QueueClient) late(ch chan queueMsg) (queueMsg, error) {
	select {
	case m := <-ch:
		return m, nil
	default:
	}
	qc.mu.Lock()
	defer qc.mu.Unlock()
	return queueMsg{}, qc.err
}

// Put adds v, encoded with msgpack, to the queue. It blocks while the queue
// is full, until ctx ends: then it returns ctx's error and v was not added.
// After the owner closed the queue it returns ErrQueueClosed. See
// SetPutWindow for puts that do not wait for their acknowledgement.
func (qc *QueueClient) Put(ctx context.Context, v any) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	data, err := msgpack.Marshal(v)
	if err != nil {
		return fmt.Errorf("queue put: encode: %w", err)
	}
	return qc.PutEncoded(ctx, data)
}

// PutEncoded is Put for a value already encoded with msgpack. The queue
// keeps data; the caller must not change it afterwards.
func (qc *QueueClient) PutEncoded(ctx context.Context, data []byte) error {
	if qc.window != nil {
		select {
		case qc.window <- struct{}{}:
		default:
			// The window is full: what is batched must go out, or the
			// acks that free it never come.
			if qc.batch {
				if err := qc.c.Flush(); err != nil {
					return fmt.Errorf("%w: %v", ErrQueueGone, err)
				}
			}
			select {
			case qc.window <- struct{}{}:
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-qc.done:
				_, err := qc.late(nil)
				return err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-qc.done:
			_, err := qc.late(nil)
			return err
		}
		qc.mu.Lock()
		err := qc.sticky
		qc.mu.Unlock()
		if err != nil {
			<-qc.window
			return err
		}
		if _, _, err := qc.request(opPut, data, true); err != nil {
			<-qc.window
			return err
		}
		return nil
	}
	seq, ch, err := qc.request(opPut, data, false)
	if err != nil {
		return err
	}
	m, err := qc.await(ctx, seq, ch)
	if err != nil {
		return err
	}
	if m.Op == opClosed {
		return fmt.Errorf("queue put: %w", ErrQueueClosed)
	}
	return nil
}

// Flush writes out batched puts (SetPutBatching), waits until the hub has
// taken every windowed put, and reports a refused one. Without a window it
// returns at once.
func (qc *QueueClient) Flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		qc.mu.Lock()
		qc.flushed.Broadcast()
		qc.mu.Unlock()
	})
	defer stop()
	if err := qc.c.Flush(); err != nil {
		return fmt.Errorf("%w: %v", ErrQueueGone, err)
	}
	qc.mu.Lock()
	defer qc.mu.Unlock()
	for qc.inPuts > 0 && qc.err == nil && ctx.Err() == nil {
		qc.flushed.Wait()
	}
	switch {
	case qc.sticky != nil:
		return qc.sticky
	case qc.inPuts == 0:
		return nil
	case qc.err != nil:
		return qc.err
	}
	return context.Cause(ctx)
}

// Get takes the oldest value from the queue and decodes it into v, a
// pointer. It blocks while the queue is empty, until ctx ends (then it
// returns ctx's error and took nothing), and returns io.EOF once the owner
// closed the queue and it is empty. A value that arrives as ctx ends is
// still returned, with a nil error, so no value is lost.
func (qc *QueueClient) Get(ctx context.Context, v any) error {
	data, err := qc.GetEncoded(ctx)
	if err != nil {
		return err
	}
	if err := msgpack.Unmarshal(data, v); err != nil {
		return fmt.Errorf("queue get: decode: %w", err)
	}
	return nil
}

// SetGetWindow makes the client ask for up to w values ahead of Get, so
// that a Get usually finds its value already here instead of waiting for a
// round trip to the hub. Values fetched ahead belong to this client: Close
// gives back those not yet taken, to the front of the queue (the queue may
// then hold more than its capacity for a moment). A consumer that dies
// without Close loses them, as it would lose a value it had taken. With
// w <= 1 (the default) every Get asks the hub for one value. Call it before
// any Get.
//
// Gets sent ahead wait in the hub like any Get, so values flow to a
// prefetching consumer before the buffer fills: backpressure then starts
// when the buffer and every consumer's window are full. A value given back
// after the owner closed the queue and the other consumers saw io.EOF stays
// in the buffer; close a prefetching consumer only after it saw io.EOF, or
// before the queue is closed.
func (qc *QueueClient) SetGetWindow(w int) {
	qc.getWindow = w
	if w <= 1 {
		qc.getWindow = 0
	}
}

// GetEncoded is Get returning the value's msgpack encoding.
func (qc *QueueClient) GetEncoded(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	if qc.getWindow > 0 {
		return qc.getAhead(ctx)
	}
	seq, ch, err := qc.request(opGet, nil, false)
	if err != nil {
		return nil, err
	}
	m, err := qc.await(ctx, seq, ch)
	if err != nil {
		return nil, err
	}
	if m.Op == opEOF {
		return nil, io.EOF
	}
	return m.Data, nil
}

// getAhead is GetEncoded with prefetching.
func (qc *QueueClient) getAhead(ctx context.Context) ([]byte, error) {
	for {
		qc.mu.Lock()
		if len(qc.ready) > 0 {
			data := qc.ready[0]
			qc.ready[0] = nil
			qc.ready = qc.ready[1:]
			qc.mu.Unlock()
			return data, qc.topUp()
		}
		if qc.eof {
			qc.mu.Unlock()
			return nil, io.EOF
		}
		qc.mu.Unlock()
		if err := qc.topUp(); err != nil {
			return nil, err
		}
		select {
		case <-qc.avail:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-qc.done:
			qc.mu.Lock()
			n, err := len(qc.ready), qc.err
			qc.mu.Unlock()
			if n == 0 {
				return nil, err
			}
		}
	}
}

// topUp sends gets ahead until getWindow values are asked for or here,
// in one frame.
func (qc *QueueClient) topUp() error {
	qc.mu.Lock()
	if qc.err != nil || qc.eof {
		qc.mu.Unlock()
		return nil // reported by the next Get, once ready is empty
	}
	want := qc.getWindow - len(qc.prefetch) - len(qc.ready)
	if want <= 0 || want < qc.getWindow/4 && len(qc.prefetch)+len(qc.ready) > 0 {
		qc.mu.Unlock()
		return nil // ask in batches, not one by one
	}
	first := qc.seq + 1
	for range want {
		qc.seq++
		qc.prefetch[qc.seq] = struct{}{}
	}
	qc.mu.Unlock()
	for seq := first; seq < first+uint64(want); seq++ {
		if err := qc.c.Buffer(&queueMsg{Op: opGet, Seq: seq}); err != nil {
			return fmt.Errorf("%w: %v", ErrQueueGone, err)
		}
	}
	if err := qc.c.Flush(); err != nil {
		return fmt.Errorf("%w: %v", ErrQueueGone, err)
	}
	return nil
}

// giveBack cancels the gets sent ahead, waits (a little) for the hub's
// answers, and returns every value fetched and not taken to the front of the
// queue.
func (qc *QueueClient) giveBack() {
	qc.mu.Lock()
	seqs := make([]uint64, 0, len(qc.prefetch))
	for seq := range qc.prefetch {
		seqs = append(seqs, seq)
	}
	qc.mu.Unlock()
	for _, seq := range seqs {
		qc.c.Buffer(&queueMsg{Op: opCancel, Seq: seq})
	}
	if qc.c.Flush() != nil {
		return
	}
	timeout := time.After(2 * time.Second)
	for {
		qc.mu.Lock()
		n := len(qc.prefetch)
		qc.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-qc.avail:
		case <-qc.done:
			return
		case <-timeout:
			return
		}
	}
	qc.mu.Lock()
	ready := qc.ready
	qc.ready = nil
	qc.mu.Unlock()
	for i := len(ready) - 1; i >= 0; i-- { // each goes to the front: newest first
		qc.c.Buffer(&queueMsg{Op: opRequeue, Data: ready[i]})
	}
	qc.c.Flush()
}

// TaskDone tells the queue that a value taken with Get has been dealt with,
// for Join. It does not wait for the hub; calling it more often than values
// were put is reported by a later TaskDone.
func (qc *QueueClient) TaskDone() error {
	qc.mu.Lock()
	if err := qc.misuse; err != nil {
		qc.misuse = nil
		qc.mu.Unlock()
		return fmt.Errorf("queue task done: %w", err)
	}
	if qc.err != nil {
		err := qc.err
		qc.mu.Unlock()
		return err
	}
	qc.mu.Unlock()
	if err := qc.c.Send(&queueMsg{Op: opTaskDone}); err != nil {
		return fmt.Errorf("%w: %v", ErrQueueGone, err)
	}
	return nil
}

// Join blocks until every value put in the queue has been marked done with
// TaskDone, or ctx ends.
func (qc *QueueClient) Join(ctx context.Context) error {
	seq, ch, err := qc.request(opJoin, nil, false)
	if err != nil {
		return err
	}
	_, err = qc.await(ctx, seq, ch)
	return err
}

// Close hangs up: calls in progress fail with ErrQueueGone, and windowed
// puts not yet taken by the hub are lost (call Flush first). It waits for
// the client's reader goroutine.
func (qc *QueueClient) Close() error {
	qc.c.Flush() // batched puts
	if qc.getWindow > 0 {
		qc.giveBack()
	}
	err := qc.c.Close()
	<-qc.done
	return err
}
