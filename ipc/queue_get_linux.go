package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The getting side of a QueueClient: values asked for in bulk, received by
// the reader goroutine into in, taken by Get from cur.

// Get takes the oldest value from the queue and decodes it into v, a
// pointer. It blocks while the queue is empty, until ctx ends (then it
// returns ctx's error and took nothing), and returns io.EOF once the owner
// closed the queue and it is empty. A value that arrives as ctx ends is
// still returned, with a nil error, so no value is lost.
func (qc *QueueClient) Get(ctx context.Context, v any) error {
	data, err := qc.GetBytes(ctx, nil)
	if err != nil {
		return err
	}
	if err := unmarshalPeer(data, v); err != nil {
		return fmt.Errorf("queue get: decode: %w", err)
	}
	return nil
}

// unmarshalPeer decodes a value another process put into v. The bytes
// never passed a Conn's frame check (the hub moves values without
// decoding them), so they get it here: without it a value nested a
// million deep overflows the decoder's stack, a fatal error.
func unmarshalPeer(data []byte, v any) (err error) {
	if err := validate(data); err != nil {
		return err
	}
	defer recoverDecode(&err)
	return msgpack.Unmarshal(data, v)
}

// GetBatch is GetBytes for up to len(dst) values at once: it waits as
// GetBytes does until there is at least one, then takes as many as are
// here, value i into dst[i] (appended to dst[i][:0]), taking the client's
// lock once. It returns how many it took. With a GetWindow it is the fast
// path for a consumer that can work on values in batches.
func (qc *QueueClient) GetBatch(ctx context.Context, dst [][]byte) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if !qc.lockGet(ctx.Done()) {
		return 0, context.Cause(ctx)
	}
	defer qc.unlockGet()
	if err := ctx.Err(); err != nil {
		return 0, context.Cause(ctx)
	}
	for {
		n := 0
		for ; n < len(dst); n++ {
			v, ok := qc.take()
			if !ok {
				break
			}
			dst[n] = append(dst[n][:0], v...)
		}
		if n > 0 {
			return n, nil
		}
		if err := qc.waitGet(ctx); err != nil {
			if errors.Is(err, errWithdraw) {
				var v []byte
				if v, err = qc.withdraw(ctx, dst[0][:0]); err == nil {
					dst[0] = v
					return 1, nil
				}
			}
			return 0, err
		}
	}
}

// errClientClosing is why a Get fails while its client is being closed.
var errClientClosing = errors.New("client closing")

// errWithdraw tells GetBytes and GetBatch that ctx ended while they waited.
var errWithdraw = errors.New("withdraw")

// waitGet waits for values when none is here to take, asking the hub for
// them first; getMu is held. It returns io.EOF at the end of the queue, and
// errWithdraw if ctx ends.
func (qc *QueueClient) waitGet(ctx context.Context) error {
	qc.mu.Lock()
	eof, err, revoked := qc.eof, qc.err, qc.revoked
	qc.revoked = 0
	qc.mu.Unlock()
	qc.asked -= revoked
	if eof {
		return io.EOF
	}
	if err != nil {
		return gone("get", err)
	}
	if qc.closing.Load() {
		return gone("get", errClientClosing)
	}
	// With more than half the window asked for, a top-up now would only
	// wake the hub and the producer: the values asked for are on their
	// way.
	if !qc.askAhead() {
		if err := qc.ask(true); err != nil {
			return err
		}
	}
	// But asks the hub gave to a lane whose producer has nothing to send
	// hold back values others put in the hub's buffer, and asking again
	// does not help (the window may be all on the lane, or a new ask goes
	// to the lane too): if nothing came meanwhile, the consumer tells the
	// hub it is dry, and the hub ends its lanes once values wait there.
	var later <-chan time.Time
	if qc.hasLanes() {
		t := time.NewTimer(dryAskDelay)
		defer t.Stop()
		later = t.C
	}
	for {
		select {
		case <-qc.avail:
			return nil
		case <-qc.done:
			return nil
		case <-ctx.Done():
			return errWithdraw
		case <-later:
			later = nil
			if err := qc.askDry(); err != nil {
				return err
			}
		}
	}
}

// dryAskDelay is how long a Get with nothing to take, on an endpoint that
// reads lanes, waits for values before it tops its window up and says it
// is dry.
const dryAskDelay = time.Millisecond

// askDry tops the window up and tells the hub (qLaneDry) that this
// endpoint has nothing to take; getMu is held.
func (qc *QueueClient) askDry() error {
	if err := qc.ask(true); err != nil {
		return err
	}
	qc.wmu.Lock()
	defer qc.wmu.Unlock()
	if err := qc.connErr("get"); err != nil {
		return err
	}
	if qc.closing.Load() {
		return gone("get", errClientClosing)
	}
	qc.out.addEmpty(qLaneDry)
	qc.flushLocked()
	return nil
}

// askAhead reports whether more than half of the get window is asked for
// and not yet taken; getMu is held. A Get with nothing to take then waits
// instead of topping the window up: with a consumer faster than its
// producers, topping up each time it runs dry would send an ask (and wake
// the hub and, on a lane, the producer) for every few values.
func (qc *QueueClient) askAhead() bool {
	return qc.getWindow > 1 && qc.asked-qc.taken > qc.getWindow/2
}

// hasLanes reports whether this endpoint reads a lane, or has hub events
// waiting behind one.
func (qc *QueueClient) hasLanes() bool {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	return len(qc.clanes) > 0 || len(qc.deferred) > 0
}

// lockGet takes the getting side, or gives up when stop is closed. A
// plain mutex is the fast path; waiting for it honours stop.
func (qc *QueueClient) lockGet(stop <-chan struct{}) bool {
	if qc.getMu.TryLock() {
		return true
	}
	qc.getWait.Add(1)
	defer qc.getWait.Add(-1)
	for !qc.getMu.TryLock() {
		select {
		case <-qc.getFree:
		case <-stop:
			return false
		}
	}
	return true
}

func (qc *QueueClient) unlockGet() {
	qc.getMu.Unlock()
	if qc.getWait.Load() > 0 {
		signal(qc.getFree)
	}
}

// GetBytes is Get returning the value's bytes, appended to dst.
func (qc *QueueClient) GetBytes(ctx context.Context, dst []byte) ([]byte, error) {
	if !qc.lockGet(ctx.Done()) {
		return dst, context.Cause(ctx)
	}
	defer qc.unlockGet()
	if err := ctx.Err(); err != nil {
		return dst, context.Cause(ctx)
	}
	for {
		if v, ok := qc.take(); ok {
			return append(dst, v...), nil
		}
		if err := qc.waitGet(ctx); err != nil {
			if errors.Is(err, errWithdraw) {
				return qc.withdraw(ctx, dst)
			}
			return dst, err
		}
	}
}

// take returns the next value received, if any; getMu is held. With a
// window it asks for more once half of it is used.
func (qc *QueueClient) take() ([]byte, bool) {
	if qc.curOff >= len(qc.cur) {
		qc.mu.Lock()
		if qc.inN == 0 {
			qc.mu.Unlock()
			return nil, false
		}
		qc.cur, qc.in = qc.in, qc.cur[:0]
		qc.inN = 0
		qc.mu.Unlock()
		qc.curOff = 0
	}
	v, next := nextRecord(qc.cur, qc.curOff)
	qc.curOff = next
	qc.taken++
	if qc.getWindow > 1 && qc.asked-qc.taken <= qc.getWindow/2 {
		qc.ask(false) // an error shows on a later Get
	}
	return v, true
}

// ask asks the hub for values up to the window; getMu is held. Without a
// window it asks for one, only when none is asked for (need is set when a
// Get has nothing to take).
func (qc *QueueClient) ask(need bool) error {
	n := qc.getWindow - (qc.asked - qc.taken)
	if qc.getWindow == 1 && !need || n <= 0 {
		return nil
	}
	qc.wmu.Lock()
	defer qc.wmu.Unlock()
	if err := qc.connErr("get"); err != nil {
		return err
	}
	if qc.closing.Load() {
		return gone("get", errClientClosing)
	}
	qc.asked += n
	qc.asking = true
	qc.out.addCount(qGrant, n, true)
	qc.flushLocked()
	return nil
}

// withdraw ends a Get whose ctx ended. Without a window it withdraws the
// ask, and returns the value if the hub had sent it already.
func (qc *QueueClient) withdraw(ctx context.Context, dst []byte) ([]byte, error) {
	if qc.getWindow > 1 || qc.asked == qc.taken {
		return dst, context.Cause(ctx)
	}
	if err := qc.revokeAll(); err != nil {
		return dst, err
	}
	if v, ok := qc.take(); ok {
		return append(dst, v...), nil
	}
	return dst, context.Cause(ctx)
}

// revokeAll withdraws every ask and waits for the hub's answer (the values
// it sent before are then here); getMu is held.
func (qc *QueueClient) revokeAll() error {
	qc.mu.Lock()
	seen := qc.revokes
	qc.mu.Unlock()
	qc.wmu.Lock()
	if err := qc.connErr("get"); err != nil {
		qc.wmu.Unlock()
		return err
	}
	qc.out.addEmpty(qRevoke)
	qc.flushLocked()
	qc.wmu.Unlock()
	for {
		qc.mu.Lock()
		n, revoked, err := qc.revokes, qc.revoked, qc.err
		if n > seen {
			qc.revoked = 0
		}
		qc.mu.Unlock()
		if n > seen {
			qc.asked -= revoked
			return nil
		}
		if err != nil {
			return gone("get", err)
		}
		select {
		case <-qc.avail:
		case <-qc.done:
		}
	}
}

// giveBack withdraws the client's asks and returns every value received
// and not taken to the hub, oldest first; Close calls it once no more asks
// can go out. It reports false if a Get kept the values (it did not end):
// Close then does not say goodbye, so the hub counts what it handed here
// as stranded instead of losing it silently.
func (qc *QueueClient) giveBack() bool {
	if !qc.revokeForClose() {
		return true // the hub is gone: nothing to give back to
	}
	stop := make(chan struct{})
	t := time.AfterFunc(laneGiveBackWait, func() { close(stop) })
	defer t.Stop()
	// Lanes end once the hub has had their producers close them (the
	// revoke asked it to); their values are then here too.
	if !qc.waitLanes(stop) {
		return false
	}
	// Every value the hub handed here has arrived. A Get waiting for more
	// wakes, takes what is here or fails: the client is closing.
	signal(qc.avail)
	if !qc.lockGet(stop) {
		return false
	}
	defer qc.unlockGet()
	qc.mu.Lock()
	qc.cur = append(qc.cur[:0], qc.cur[qc.curOff:]...)
	qc.cur = append(qc.cur, qc.in...)
	qc.in = qc.in[:0]
	qc.inN = 0
	qc.mu.Unlock()
	qc.curOff = 0
	// Each frame goes to the front of the queue: send the newest first.
	type run struct{ from, to, n int }
	var runs []run
	for off := 0; off < len(qc.cur); {
		size, n := recsPrefix(qc.cur[off:], recsBatch/64)
		runs = append(runs, run{off, off + size, n})
		off += size
	}
	qc.wmu.Lock()
	defer qc.wmu.Unlock()
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		qc.out.addRecords(qRequeue, qc.cur[r.from:r.to], r.n)
		qc.out.seal()
		qc.taken += r.n
	}
	qc.flushLocked()
	qc.cur = qc.cur[:0]
	return true
}

// revokeForClose withdraws every ask and waits for the hub's answer, after
// which nothing more is handed here. It does not need the getting side,
// which a waiting Get may hold. It reports false if the hub is gone.
func (qc *QueueClient) revokeForClose() bool {
	qc.mu.Lock()
	seen := qc.revokes
	qc.mu.Unlock()
	qc.wmu.Lock()
	if qc.connErr("close") != nil {
		qc.wmu.Unlock()
		return false
	}
	qc.out.addEmpty(qRevoke)
	qc.flushLocked()
	qc.wmu.Unlock()
	for {
		qc.mu.Lock()
		n, err := qc.revokes, qc.err
		qc.mu.Unlock()
		if n > seen {
			return true
		}
		if err != nil {
			return false
		}
		select {
		case <-qc.revSig:
		case <-qc.done:
		}
	}
}
