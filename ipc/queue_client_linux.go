package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// QueueOptions configure one endpoint of a Queue. They are fixed when the
// endpoint is opened; the zero value is a synchronous endpoint.
type QueueOptions struct {
	// PutWindow is how many values a producer may have on their way to the
	// hub. With a window, Put returns once the value is in this process's
	// send buffer, and a writer goroutine sends whatever has gathered
	// there, many values per frame, without waiting to fill a batch; Flush
	// waits until the hub has taken them all. A refused put (the queue was
	// closed) is reported by a later Put or Flush. Backpressure holds: a
	// producer runs at most PutWindow values ahead of the buffer's room.
	// Zero or 1 means every Put waits for the hub's answer. At most
	// MaxQueueWindow.
	PutWindow int

	// GetWindow is how many values the endpoint asks for ahead of Get, so
	// that a Get usually finds its value already here. Values fetched ahead
	// belong to this endpoint: Close gives back those not yet taken; an
	// endpoint whose process dies loses them (the hub counts them in
	// QueueStats.Stranded). Zero or 1 means every Get asks the hub for one
	// value when it needs it. At most MaxQueueWindow.
	GetWindow int
}

func (o QueueOptions) check() error {
	if o.PutWindow < 0 || o.PutWindow > MaxQueueWindow {
		return fmt.Errorf("put window %d, want 0 to %d", o.PutWindow, MaxQueueWindow)
	}
	if o.GetWindow < 0 || o.GetWindow > MaxQueueWindow {
		return fmt.Errorf("get window %d, want 0 to %d", o.GetWindow, MaxQueueWindow)
	}
	return nil
}

// maxOut is how many bytes of puts may gather while the writer goroutine
// is busy before Put waits for it.
const maxOut = 512 << 10

// taskDoneDelay is how long TaskDones may gather before they are sent on
// their own: they go sooner with any other message.
const taskDoneDelay = time.Millisecond

// gone wraps err, why the connection to the hub failed, for operation op.
func gone(op string, err error) error {
	if errors.Is(err, ErrQueueGone) {
		return fmt.Errorf("queue %s: %w", op, err)
	}
	return fmt.Errorf("queue %s: %w: %w", op, ErrQueueGone, err)
}

// A QueueClient is one endpoint of a Queue, in any process. Its methods may
// be called from several goroutines at once; Gets on one client are served
// one at a time.
type QueueClient struct {
	nc        *net.UnixConn
	putWindow int
	getWindow int
	done      chan struct{} // closed when the reader ends
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// The sending side: the frames being built and the puts in flight.
	wmu       sync.Mutex
	out       outBuf
	spare     []byte
	writing   bool       // someone is in flushLocked's write loop
	flushed   *sync.Cond // on wmu: broadcast when a flushLocked write loop ends
	kicked    bool       // the writer goroutine has a kick pending
	kick      chan struct{}
	werr      error // the first write error
	inflight  int   // puts sent (or buffered) and not yet answered
	sticky    error // a windowed put refused
	outcome   byte  // how the last put was answered: qAck, qRefused or qCancelled
	putRoom   chan struct{}
	putWait   int // Puts and Flushes waiting on putRoom
	tdArmed   bool
	tdTimer   *time.Timer
	laneTimer *time.Timer // the lane's stall timer (laneStallLocked)
	asking    bool        // an ask was ever sent: Close must withdraw and give back

	lane    producerLane // under wmu
	closeBy time.Time    // under wmu: set by Close, the deadline of every later write

	closing atomic.Bool   // Close has begun: no more asks
	revSig  chan struct{} // signalled by every qRevoked, for Close

	encMu  sync.Mutex // typed Put
	encBuf frameBuf
	enc    *msgpack.Encoder

	// The getting side, owned by whoever holds getMu (see lockGet).
	getMu   sync.Mutex
	getWait atomic.Int32  // goroutines waiting for getMu
	getFree chan struct{} // signalled when getMu is released while some wait
	cur     []byte        // records received, cur[curOff:] not yet taken
	curOff  int
	asked   int // values asked for, less those withdrawn
	taken   int // values taken by Get or given back

	// Filled by the reader, under mu.
	mu      sync.Mutex
	in      []byte // records received and not yet moved to cur
	inN     int
	eof     bool
	revoked int // values withdrawn by qRevoked answers
	revokes int // qRevoked answers received
	err     error
	misuse  error
	joinSeq uint64
	joins   map[uint64]chan struct{}
	avail   chan struct{} // signalled when the reader changed any of these

	// Lanes this endpoint reads, under mu (queue_lane_client_linux.go).
	fdr      *fdReader // the reader's: sockets received from the hub
	clanes   map[uint32]*consumerLane
	deferred []laneEvent   // hub events waiting behind a lane
	laneStop bool          // Close or the hub gone: lanes are closed
	laneSig  chan struct{} // signalled when a lane ends

	laneUntold atomic.Bool // values read from a lane, not yet told to the hub
}

// OpenQueue returns the queue endpoint on f, a file from Queue.Attach
// (in a child, inherited through procs.Cmd.ExtraFiles). It takes f over.
func OpenQueue(f *os.File, opt QueueOptions) (*QueueClient, error) {
	if err := opt.check(); err != nil {
		f.Close()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("open queue: %T is not a Unix socket", nc)
	}
	qc := &QueueClient{
		nc: uc, putWindow: max(1, opt.PutWindow), getWindow: max(1, opt.GetWindow),
		done: make(chan struct{}), kick: make(chan struct{}, 1), putRoom: make(chan struct{}, 1),
		getFree: make(chan struct{}, 1), joins: make(map[uint64]chan struct{}),
		avail: make(chan struct{}, 1), revSig: make(chan struct{}, 1), laneSig: make(chan struct{}, 1),
	}
	qc.fdr = newFdReader(uc)
	qc.flushed = sync.NewCond(&qc.wmu)
	qc.enc = msgpack.NewEncoder(&qc.encBuf)
	// Buffers sized for a full window of small values, so that they do
	// not grow (and fault in fresh pages) while values stream.
	if qc.putWindow > 1 {
		qc.out.b = make([]byte, 0, maxOut+recsBatch)
		qc.spare = make([]byte, 0, maxOut+recsBatch)
	}
	if qc.getWindow > 1 {
		size := min(qc.getWindow, 1<<14) * 80
		qc.in, qc.cur = make([]byte, 0, size), make([]byte, 0, size)
		qc.out.addEmpty(qLaneOK) // goes with the first ask
	}
	qc.tdTimer = time.AfterFunc(time.Hour, func() {
		qc.wmu.Lock()
		qc.tdArmed = false
		qc.flushLocked()
		qc.wmu.Unlock()
	})
	qc.tdTimer.Stop()
	qc.laneTimer = time.AfterFunc(time.Hour, qc.laneStalled)
	qc.laneTimer.Stop()
	qc.wg.Go(qc.readLoop)
	qc.wg.Go(qc.writeLoop)
	return qc, nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// readLoop handles the hub's replies until the connection ends.
func (qc *QueueClient) readLoop() {
	// Only an endpoint with a window can be given a lane's socket: the
	// others read with read(2), not recvmsg.
	var r io.Reader = qc.nc
	if qc.putWindow > 1 || qc.getWindow > 1 {
		r = qc.fdr
	}
	fr := newFrameReader(r, readBuf)
	var err error
	for err == nil {
		var op byte
		var p []byte
		if op, p, err = fr.next(); err != nil {
			break
		}
		err = qc.handle(op, p)
	}
	if err == io.EOF {
		err = ErrQueueGone
	}
	qc.mu.Lock()
	qc.err = err
	qc.mu.Unlock()
	qc.fdr.closeAll()
	qc.stopLanes()
	close(qc.done)
}

func (qc *QueueClient) handle(op byte, p []byte) error {
	switch op {
	case qAck, qRefused, qCancelled:
		n, err := parseCount(p)
		if err != nil {
			return err
		}
		qc.wmu.Lock()
		qc.inflight -= n
		if n > 0 {
			qc.outcome = op
		}
		if op == qRefused && qc.sticky == nil {
			qc.sticky = fmt.Errorf("queue put: %w", ErrQueueClosed)
		}
		qc.wmu.Unlock()
		signal(qc.putRoom)
	case qItems:
		n, recs, err := parseRecords(p)
		if err != nil {
			return err
		}
		qc.mu.Lock()
		if qc.waiting() {
			qc.laneEvent(laneEvent{op: op, k: n, recs: append([]byte(nil), recs...)})
		} else {
			qc.in = append(qc.in, recs...)
			qc.inN += n
		}
		qc.mu.Unlock()
		signal(qc.avail)
	case qEOF:
		qc.mu.Lock()
		if qc.waiting() {
			qc.laneEvent(laneEvent{op: op})
		} else {
			qc.eof = true
		}
		qc.mu.Unlock()
		signal(qc.avail)
	case qLaneOpenP, qLaneOpenC, qLaneCredit, qLaneNo, qLaneEnd, qLaneItems, qLaneClosed:
		return qc.handleLane(op, p)
	case qRevoked:
		n, err := parseCount(p)
		if err != nil {
			return err
		}
		qc.mu.Lock()
		qc.revoked += n
		qc.revokes++
		qc.mu.Unlock()
		signal(qc.avail)
		signal(qc.revSig)
	case qJoined:
		seq, err := parseSeq(p)
		if err != nil {
			return err
		}
		qc.mu.Lock()
		if ch, ok := qc.joins[seq]; ok {
			close(ch)
			delete(qc.joins, seq)
		}
		qc.mu.Unlock()
	case qError:
		code, err := parseCount(p)
		if err != nil {
			return err
		}
		qc.mu.Lock()
		qc.misuse = queueErrorCode(uint32(code))
		qc.mu.Unlock()
	default:
		return fmt.Errorf("hub sent op %d: %w", op, errBadFrame)
	}
	return nil
}

// writeLoop sends what Puts and TaskDones gathered, whenever kicked.
func (qc *QueueClient) writeLoop() {
	for {
		select {
		case <-qc.kick:
		case <-qc.done:
			return
		}
		qc.wmu.Lock()
		qc.kicked = false
		qc.flushLocked()
		qc.wmu.Unlock()
	}
}

// flushLocked writes out everything gathered, unless another goroutine is
// already doing so (it then writes what is added meanwhile too). qc.wmu is
// held; it is released during the writes.
func (qc *QueueClient) flushLocked() {
	if qc.writing {
		return
	}
	qc.writing = true
	for qc.werr == nil {
		if qc.out.len() == 0 {
			if !qc.laneWork() {
				break
			}
			qc.laneFlushLocked()
			continue
		}
		b := qc.out.take(qc.spare)
		qc.tdArmed = false
		if qc.putWait > 0 {
			signal(qc.putRoom) // a Put may wait for the buffer to go
		}
		qc.wmu.Unlock()
		_, err := qc.nc.Write(b)
		qc.wmu.Lock()
		qc.spare = b[:0]
		if err != nil {
			qc.werr = err
		}
	}
	if qc.werr != nil {
		qc.out.take(qc.out.b)
	}
	qc.writing = false
	qc.flushed.Broadcast()
}

// kickLocked gets the writer goroutine to send what is gathered; qc.wmu is
// held.
func (qc *QueueClient) kickLocked() {
	if !qc.writing && !qc.kicked {
		qc.kicked = true
		signal(qc.kick)
	}
}

// connErr returns why the client cannot talk to the hub, if it cannot.
func (qc *QueueClient) connErr(op string) error {
	select {
	case <-qc.done:
		qc.mu.Lock()
		defer qc.mu.Unlock()
		return gone(op, qc.err)
	default:
	}
	if qc.werr != nil { // wmu is held by every caller
		return gone(op, qc.werr)
	}
	return nil
}

// Put adds v, encoded with msgpack, to the queue. It blocks while the queue
// is full, until ctx ends: then it returns ctx's error and v was not added.
// After the owner closed the queue it returns ErrQueueClosed. See
// QueueOptions.PutWindow for puts that do not wait for the hub.
func (qc *QueueClient) Put(ctx context.Context, v any) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	qc.encMu.Lock()
	defer qc.encMu.Unlock()
	qc.encBuf.b = qc.encBuf.b[:0]
	qc.enc.ResetWriter(&qc.encBuf)
	if err := qc.enc.Encode(v); err != nil {
		return fmt.Errorf("queue put: encode: %w", err)
	}
	return qc.PutBytes(ctx, qc.encBuf.b)
}

// PutBytes is Put for a value already encoded (with msgpack, for a reader
// that uses Get; any bytes for one that uses GetBytes). It copies v: the
// caller may reuse it at once.
func (qc *QueueClient) PutBytes(ctx context.Context, v []byte) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if len(v) > MaxQueueValue {
		return fmt.Errorf("queue put: value of %d bytes is over the %d-byte maximum", len(v), MaxQueueValue)
	}
	qc.wmu.Lock()
	if err := qc.waitRoomLocked(ctx); err != nil {
		qc.wmu.Unlock()
		return err
	}
	qc.addPutLocked(v)
	qc.inflight++
	if qc.putWindow > 1 {
		if qc.putWait > 0 && qc.inflight < qc.putWindow {
			signal(qc.putRoom) // pass the room on
		}
		qc.kickLocked()
		qc.wmu.Unlock()
		return nil
	}
	defer qc.wmu.Unlock()
	qc.flushLocked()
	cancelled := false
	for qc.inflight > 0 {
		if err := qc.connErr("put"); err != nil {
			return err
		}
		qc.wmu.Unlock()
		var stop <-chan struct{}
		if !cancelled {
			stop = ctx.Done()
		}
		select {
		case <-qc.putRoom:
			qc.wmu.Lock()
		case <-qc.done:
			qc.wmu.Lock()
		case <-stop:
			// Withdraw it, unless the hub took it meanwhile: the answer
			// to the withdrawal comes after the put's own, if any.
			qc.wmu.Lock()
			cancelled = true
			qc.out.addEmpty(qCancelPuts)
			qc.flushLocked()
		}
	}
	switch qc.outcome {
	case qRefused:
		qc.sticky = nil // a synchronous put reports its refusal itself
		return fmt.Errorf("queue put: %w", ErrQueueClosed)
	case qCancelled:
		return context.Cause(ctx)
	}
	return nil
}

// waitRoomLocked waits until one more put fits the window and the send
// buffer; qc.wmu is held, and released while it waits.
func (qc *QueueClient) waitRoomLocked(ctx context.Context) error {
	for {
		if err := qc.connErr("put"); err != nil {
			return err
		}
		if qc.sticky != nil {
			return qc.sticky
		}
		if qc.inflight < qc.putWindow && qc.out.len() < maxOut && qc.laneRoom() {
			return nil
		}
		qc.laneReportLocked()
		qc.laneStallLocked()
		qc.kickLocked() // what is gathered must go, or no answer frees the window
		qc.putWait++
		qc.wmu.Unlock()
		var err error
		select {
		case <-qc.putRoom:
		case <-ctx.Done():
			err = context.Cause(ctx)
		case <-qc.done:
		}
		qc.wmu.Lock()
		qc.putWait--
		if err != nil {
			return err
		}
	}
}

// PutBatch is PutBytes for each value of vs in turn, taking the client's
// lock once for as many values as fit the window, not once per value: the
// fast path when one goroutine has many values at hand. It returns how many
// it put, all of them unless there is an error. Without a PutWindow it
// calls PutBytes for each.
func (qc *QueueClient) PutBatch(ctx context.Context, vs [][]byte) (int, error) {
	if qc.putWindow <= 1 {
		for i, v := range vs {
			if err := qc.PutBytes(ctx, v); err != nil {
				return i, err
			}
		}
		return len(vs), nil
	}
	if err := ctx.Err(); err != nil {
		return 0, context.Cause(ctx)
	}
	qc.wmu.Lock()
	defer qc.wmu.Unlock()
	n := 0
	for n < len(vs) {
		if err := qc.waitRoomLocked(ctx); err != nil {
			return n, err
		}
		for ; n < len(vs) && qc.inflight < qc.putWindow && qc.out.len() < maxOut && qc.laneRoom(); n++ {
			if len(vs[n]) > MaxQueueValue {
				return n, fmt.Errorf("queue put: value of %d bytes is over the %d-byte maximum", len(vs[n]), MaxQueueValue)
			}
			qc.addPutLocked(vs[n])
			qc.inflight++
		}
		qc.kickLocked()
	}
	if qc.putWait > 0 && qc.inflight < qc.putWindow {
		signal(qc.putRoom) // pass the room on
	}
	return n, nil
}

// Flush sends the puts gathered so far and waits until the hub has taken
// every put of this client, then reports a refused one.
func (qc *QueueClient) Flush(ctx context.Context) error {
	qc.wmu.Lock()
	defer qc.wmu.Unlock()
	qc.putWait++ // from here on, lane writes are reported at once
	defer func() {
		if qc.putWait--; qc.putWait > 0 {
			signal(qc.putRoom) // pass the wake-up on
		}
	}()
	qc.flushLocked()
	qc.laneReportLocked()
	qc.flushLocked()
	for qc.inflight > 0 {
		if err := qc.connErr("flush"); err != nil {
			return err
		}
		qc.laneStallLocked()
		qc.wmu.Unlock()
		select {
		case <-qc.putRoom:
		case <-qc.done:
		case <-ctx.Done():
			qc.wmu.Lock()
			return context.Cause(ctx)
		}
		qc.wmu.Lock()
	}
	return qc.sticky
}

// TaskDone tells the queue that a value taken with Get has been dealt with,
// for Join. It does not wait for the hub: TaskDones gather for up to a
// millisecond, or until another message goes. Calling it more often than
// values were put is reported by a later TaskDone.
func (qc *QueueClient) TaskDone() error {
	qc.mu.Lock()
	misuse := qc.misuse
	qc.misuse = nil
	qc.mu.Unlock()
	if misuse != nil {
		return fmt.Errorf("queue task done: %w", misuse)
	}
	qc.wmu.Lock()
	defer qc.wmu.Unlock()
	if err := qc.connErr("task done"); err != nil {
		return err
	}
	qc.tellLanesLocked()
	qc.out.addCount(qTaskDone, 1, true)
	if !qc.tdArmed && !qc.writing {
		qc.tdArmed = true
		qc.tdTimer.Reset(taskDoneDelay)
	}
	return nil
}

// Join blocks until every value put in the queue has been marked done with
// TaskDone, or ctx ends.
func (qc *QueueClient) Join(ctx context.Context) error {
	ch := make(chan struct{})
	qc.mu.Lock()
	if qc.err != nil {
		err := qc.err
		qc.mu.Unlock()
		return gone("join", err)
	}
	qc.joinSeq++
	seq := qc.joinSeq
	qc.joins[seq] = ch
	qc.mu.Unlock()
	qc.wmu.Lock()
	qc.out.addSeq(qJoin, seq)
	qc.flushLocked()
	qc.wmu.Unlock()
	select {
	case <-ch:
		return nil
	case <-qc.done:
		select {
		case <-ch:
			return nil
		default:
		}
		qc.mu.Lock()
		defer qc.mu.Unlock()
		return gone("join", qc.err)
	case <-ctx.Done():
		qc.mu.Lock()
		delete(qc.joins, seq)
		qc.mu.Unlock()
		qc.wmu.Lock()
		qc.out.addSeq(qCancelJoin, seq)
		qc.kickLocked()
		qc.wmu.Unlock()
		return context.Cause(ctx)
	}
}

// Close sends what is gathered, gives back the values fetched ahead and
// not taken (to the front of the queue), says goodbye to the hub, and
// hangs up: calls in progress then fail with ErrQueueGone. Puts the hub
// has not taken yet are lost (call Flush first). It returns the error of
// sending any of this.
//
// A value given back after the owner closed the queue and the other
// consumers saw io.EOF stays in the buffer; close a prefetching consumer
// only after it saw io.EOF, or before the queue is closed.
func (qc *QueueClient) Close() error {
	qc.closeOnce.Do(func() { qc.closeErr = qc.close() })
	return qc.closeErr
}

func (qc *QueueClient) close() error {
	qc.tdTimer.Stop()
	qc.laneTimer.Stop()
	qc.wmu.Lock()
	qc.closing.Store(true) // under wmu: every ask is sent before the revoke below
	asking := qc.asking
	qc.wmu.Unlock()
	bye := true
	if asking {
		bye = qc.giveBack()
	}
	var err error
	qc.wmu.Lock()
	// Writes in progress are waited for below, but not forever: a hub or
	// a lane consumer that is alive and reads nothing (stopped) fails
	// them after closeWriteWait. What a lane write could not send goes to
	// the hub instead, which has as long again.
	qc.closeBy = time.Now().Add(closeWriteWait)
	qc.nc.SetWriteDeadline(qc.closeBy.Add(closeWriteWait))
	if qc.lane.conn != nil {
		qc.lane.conn.SetWriteDeadline(qc.closeBy)
	}
	if qc.lane.mode == laneOn {
		qc.lane.end = true // what the credit allows goes, then the lane ends
		qc.flushLocked()
	}
	if bye {
		qc.out.addEmpty(qBye)
	}
	// Another goroutine may be writing: the goodbye must be out before the
	// socket closes, or the hub counts what it handed here as stranded.
	for qc.flushLocked(); qc.writing || qc.out.len() > 0 && qc.werr == nil; qc.flushLocked() {
		if qc.writing {
			qc.flushed.Wait()
		}
	}
	if err == nil && qc.werr != nil {
		select {
		case <-qc.done: // the hub was gone already: nothing to report
		default:
			err = gone("close", qc.werr)
		}
	}
	qc.wmu.Unlock()
	if cerr := qc.nc.Close(); err == nil {
		err = cerr
	}
	qc.stopLanes()
	qc.wg.Wait()
	return err
}
