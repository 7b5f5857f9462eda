package ipc

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"time"
)

// The endpoint's side of lanes (see queue_lane_linux.go for the protocol).

// A producer's lane modes.
const (
	laneRelay  = iota // puts go to the hub
	laneAsking        // qLaneAsk sent: puts wait in lrecs for the answer
	laneOn            // puts go on the lane as far as the credit allows
)

// producerLane is a producer's lane state, under QueueClient.wmu.
type producerLane struct {
	mode    int
	conn    *net.UnixConn
	credit  int    // values it may still write
	recs    []byte // puts not yet written (nor sent to the hub)
	n       int
	spare   []byte
	written int  // values written on the lane, in all
	told    int  // of those, reported to the hub
	starved bool // qLaneStarved sent since the last credit
	end     bool // the hub asked to end the lane
	wait    int  // puts to relay before asking again
	never   bool // the hub has lanes off
}

// consumerLane is one lane a consumer reads, under QueueClient.mu.
type consumerLane struct {
	id      uint32
	conn    *net.UnixConn
	owed    int           // asks delegated to the lane
	got     int           // values read from it
	told    int           // of those, reported to the hub
	drained bool          // read to its end
	more    chan struct{} // signalled when owed grows
}

// laneEvent is something from the hub stream that waits behind a lane not
// yet read to its end.
type laneEvent struct {
	op   byte
	id   uint32
	k    int
	conn *net.UnixConn
	recs []byte
}

// addPutLocked adds one put; qc.wmu is held.
func (qc *QueueClient) addPutLocked(v []byte) {
	pl := &qc.lane
	if pl.mode != laneRelay {
		pl.recs = binary.LittleEndian.AppendUint32(pl.recs, uint32(len(v)))
		pl.recs = append(pl.recs, v...)
		pl.n++
		return
	}
	qc.out.addRecord(qPuts, v)
	if qc.putWindow <= 1 || pl.never {
		return
	}
	if pl.wait > 0 {
		pl.wait--
		return
	}
	if qc.inflight+1 >= laneAskAt {
		qc.out.addEmpty(qLaneAsk)
		pl.mode = laneAsking
	}
}

// laneRoom reports whether the lane buffer has room for more puts.
func (qc *QueueClient) laneRoom() bool { return len(qc.lane.recs) < maxOut }

// laneWork reports whether flushLocked has lane work to do.
func (qc *QueueClient) laneWork() bool {
	pl := &qc.lane
	return pl.mode == laneOn && (pl.credit > 0 && pl.n > 0 || pl.end || pl.credit == 0 && pl.n > 0 && !pl.starved)
}

// laneFlushLocked writes what the credit allows on the lane, ends it if
// asked, or says it is starved; qc.wmu is held, and released during the
// write.
func (qc *QueueClient) laneFlushLocked() {
	pl := &qc.lane
	if pl.credit > 0 && pl.n > 0 {
		size, k := len(pl.recs), pl.n
		if k > pl.credit {
			size, k = recsPrefix(pl.recs, pl.credit)
		}
		take := pl.recs
		pl.recs = append(pl.spare[:0], take[size:]...)
		pl.spare = nil
		pl.n -= k
		pl.credit -= k
		conn := pl.conn
		qc.wmu.Unlock()
		w, wsize, err := laneWrite(conn, take[:size], k)
		if testHookLaneWrote != nil {
			testHookLaneWrote(conn, pl.written+w)
		}
		qc.wmu.Lock()
		pl.written += w
		// Reports go in bulk: a quarter of the window, or at once when a
		// Put or Flush waits for the hub's acknowledgements.
		if pl.written-pl.told >= max(1, qc.putWindow/4) || qc.putWait > 0 {
			qc.laneReportLocked()
		}
		if err != nil {
			// The consumer is gone: what was not written goes to the hub,
			// before the later puts.
			rest := append(append([]byte(nil), take[wsize:size]...), pl.recs...)
			pl.recs, pl.n = rest, pl.n+k-w
			pl.end = true
		}
		pl.spare = take[:0]
		return
	}
	if pl.end {
		qc.laneEndLocked()
		return
	}
	qc.out.addEmpty(qLaneStarved)
	pl.starved = true
}

// laneEndLocked closes the lane, reports its total and sends the puts not
// written to the hub; qc.wmu is held.
func (qc *QueueClient) laneEndLocked() {
	pl := &qc.lane
	if pl.conn != nil {
		pl.conn.Close()
		pl.conn = nil
	}
	qc.out.addCount(qLaneDone, pl.written, false)
	pl.told = pl.written
	qc.laneRelayLocked()
}

// laneRelayLocked sends the puts kept for the lane to the hub and goes
// back to relaying; qc.wmu is held.
func (qc *QueueClient) laneRelayLocked() {
	pl := &qc.lane
	for off := 0; off < len(pl.recs); {
		v, next := nextRecord(pl.recs, off)
		qc.out.addRecord(qPuts, v)
		off = next
	}
	pl.recs, pl.n = pl.recs[:0], 0
	pl.mode, pl.credit, pl.written, pl.told, pl.starved, pl.end = laneRelay, 0, 0, 0, false, false
	pl.wait = laneRetry
}

// laneReportLocked tells the hub the values written on the lane so far,
// if it has not been told; qc.wmu is held.
func (qc *QueueClient) laneReportLocked() {
	pl := &qc.lane
	if pl.mode == laneOn && pl.written > pl.told {
		qc.out.addCount(qLaneWrote, pl.written, false)
		pl.told = pl.written
	}
}

// laneWrite writes the k records of recs on conn as frames, and returns
// how many values, and how many bytes of recs, went out whole.
func laneWrite(conn *net.UnixConn, recs []byte, k int) (int, int, error) {
	var bufs net.Buffers
	type part struct{ size, n int }
	var parts []part
	left := k
	if len(recs) <= laneFrame {
		// One frame: no need to walk the records for a place to cut.
		bufs = append(bufs, laneHdr(recs, k), recs)
		parts = append(parts, part{len(recs), k})
		left = 0
	}
	for off := 0; left > 0; {
		size, n := 0, 0
		for n < left && (n == 0 || size+recHdr+int(binary.LittleEndian.Uint32(recs[off+size:])) <= laneFrame) {
			size += recHdr + int(binary.LittleEndian.Uint32(recs[off+size:]))
			n++
		}
		bufs = append(bufs, laneHdr(recs[off:off+size], n), recs[off:off+size])
		parts = append(parts, part{size, n})
		off += size
		left -= n
	}
	wrote, err := bufs.WriteTo(conn)
	if err == nil {
		return k, len(recs), nil
	}
	w, wsize := 0, 0
	for _, p := range parts {
		if wrote < int64(recsHdr+p.size) {
			break
		}
		wrote -= int64(recsHdr + p.size)
		w, wsize = w+p.n, wsize+p.size
	}
	return w, wsize, err
}

// handleLane handles the hub's lane messages; it runs in the reader.
func (qc *QueueClient) handleLane(op byte, p []byte) error {
	switch op {
	case qLaneOpenP, qLaneOpenC:
		id, err := parseCount(p)
		if err != nil {
			return err
		}
		f := qc.fdr.next()
		if f == nil {
			return fmt.Errorf("lane %d came without its socket: %w", id, errBadFrame)
		}
		conn, err := laneConn(f)
		if err != nil {
			return err
		}
		if op == qLaneOpenC {
			qc.mu.Lock()
			qc.laneEvent(laneEvent{op: op, id: uint32(id), conn: conn})
			qc.mu.Unlock()
			// A Get that began waiting before it read a lane looks again:
			// its asks may go to the lane (waitGet's dry ask).
			signal(qc.avail)
			return nil
		}
		qc.wmu.Lock()
		defer qc.wmu.Unlock()
		if qc.lane.mode != laneAsking {
			conn.Close()
			return fmt.Errorf("lane %d not asked for: %w", id, errBadFrame)
		}
		qc.lane.mode, qc.lane.conn = laneOn, conn
		if !qc.closeBy.IsZero() {
			conn.SetWriteDeadline(qc.closeBy) // Close waits for its writes
		}
		qc.kickLocked()
	case qLaneCredit, qLaneNo:
		n, err := parseCount(p)
		if err != nil {
			return err
		}
		qc.wmu.Lock()
		if op == qLaneCredit {
			qc.lane.credit += n
			qc.lane.starved = false
		} else if qc.lane.mode == laneAsking {
			qc.laneRelayLocked()
			qc.lane.never = n == 1
		}
		qc.kickLocked()
		qc.wmu.Unlock()
	case qLaneEnd:
		qc.wmu.Lock()
		if qc.lane.mode == laneOn {
			qc.lane.end = true
			qc.kickLocked()
		}
		qc.wmu.Unlock()
	case qLaneItems:
		v, err := parseSeq(p)
		if err != nil {
			return err
		}
		qc.mu.Lock()
		qc.laneEvent(laneEvent{op: op, id: uint32(v >> 32), k: int(uint32(v))})
		qc.mu.Unlock()
	case qLaneClosed:
		id, err := parseCount(p)
		if err != nil {
			return err
		}
		qc.mu.Lock()
		qc.laneEvent(laneEvent{op: op, id: uint32(id)})
		qc.mu.Unlock()
		signal(qc.avail)
	}
	return nil
}

func laneConn(f *os.File) (*net.UnixConn, error) {
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("open lane: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("open lane: %T is not a Unix socket", nc)
	}
	return uc, nil
}

// laneEvent applies ev, or queues it behind a lane not yet read to its
// end; qc.mu is held.
func (qc *QueueClient) laneEvent(ev laneEvent) {
	qc.deferred = append(qc.deferred, ev)
	qc.advance()
}

// advance applies the queued events in order, up to the first qLaneClosed
// of a lane not yet read to its end; qc.mu is held.
func (qc *QueueClient) advance() {
	for len(qc.deferred) > 0 {
		ev := &qc.deferred[0]
		switch ev.op {
		case qLaneOpenC:
			l := &consumerLane{id: ev.id, conn: ev.conn, more: make(chan struct{}, 1)}
			if qc.clanes == nil {
				qc.clanes = make(map[uint32]*consumerLane)
			}
			qc.clanes[ev.id] = l
			if qc.laneStop {
				l.conn.Close()
			}
			qc.wg.Go(func() { qc.laneRead(l) })
		case qLaneItems:
			if l := qc.clanes[ev.id]; l != nil {
				l.owed += ev.k
				signal(l.more)
			}
		case qLaneClosed:
			l := qc.clanes[ev.id]
			if l != nil && !l.drained {
				return
			}
			if l != nil {
				if u := l.owed - l.got; u > 0 {
					qc.revoked += u // asks not met: Get asks again
				}
				delete(qc.clanes, ev.id)
			}
			signal(qc.laneSig)
		case qItems:
			qc.in = append(qc.in, ev.recs...)
			qc.inN += ev.k
		case qEOF:
			qc.eof = true
		}
		*ev = laneEvent{}
		qc.deferred = qc.deferred[1:]
	}
}

// waiting reports whether hub events wait behind a lane; qc.mu is held.
func (qc *QueueClient) waiting() bool { return len(qc.deferred) > 0 }

// laneRead reads lane l to its end, its values into in.
func (qc *QueueClient) laneRead(l *consumerLane) {
	fr := newFrameReader(l.conn, readBuf)
	for {
		op, p, err := fr.next()
		if err != nil {
			break // the end, a torn last frame, or Close
		}
		var n int
		var recs []byte
		if op == qItems {
			n, recs, err = parseRecords(p)
		}
		if op != qItems || err != nil {
			break
		}
		if testHookLaneRead != nil {
			testHookLaneRead()
		}
		if !qc.laneTake(l, recs, n) {
			break
		}
	}
	l.conn.Close()
	qc.wmu.Lock()
	qc.mu.Lock()
	l.told = l.got
	qc.out.addSeq(qLaneReadEnd, uint64(l.id)<<32|uint64(l.got))
	qc.mu.Unlock()
	qc.kickLocked()
	qc.wmu.Unlock()
	qc.mu.Lock()
	l.drained = true
	qc.advance()
	qc.mu.Unlock()
	signal(qc.avail)
	signal(qc.laneSig)
}

// laneTake moves n values read from lane l into in, but only as far as the
// asks delegated to the lane in the hub stream handled so far: a value
// relayed before the delegation may still be on its way in that stream,
// and must come first. It reports false when the client stops.
func (qc *QueueClient) laneTake(l *consumerLane, recs []byte, n int) bool {
	for n > 0 {
		qc.mu.Lock()
		k := min(n, l.owed-l.got)
		stop := qc.laneStop
		if k > 0 && !stop {
			size := len(recs)
			if k < n {
				size, _ = recsPrefix(recs, k)
			}
			qc.in = append(qc.in, recs[:size]...)
			qc.inN += k
			l.got += k
			recs, n = recs[size:], n-k
			// Before the values can be taken: a Get that takes one
			// holds qc.mu after this, so the TaskDone that follows it
			// sees the flag and reports the count first.
			qc.laneUntold.Store(true)
		}
		qc.mu.Unlock()
		if stop {
			return false
		}
		if k > 0 {
			signal(qc.avail)
			if testHookLaneTook != nil {
				testHookLaneTook()
			}
			continue
		}
		select {
		case <-l.more:
		case <-qc.done:
			return false
		}
	}
	return true
}

// tellLanesLocked reports the values read from lanes and not yet told to
// the hub, so that TaskDones for them never arrive before the hub counts
// them (their producer may not have told it yet, or ever); qc.wmu is held.
func (qc *QueueClient) tellLanesLocked() {
	if !qc.laneUntold.Swap(false) {
		return
	}
	qc.mu.Lock()
	for _, l := range qc.clanes {
		if l.got > l.told {
			l.told = l.got
			qc.out.addSeq(qLaneRead, uint64(l.id)<<32|uint64(l.got))
		}
	}
	qc.mu.Unlock()
}

// waitLanes waits until every lane is read to its end and closed by its
// producer, or stop is closed, or the hub is gone.
func (qc *QueueClient) waitLanes(stop <-chan struct{}) bool {
	for {
		qc.mu.Lock()
		n := len(qc.clanes) + len(qc.deferred)
		qc.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-qc.laneSig:
		case <-qc.done:
			return false
		case <-stop:
			return false
		}
	}
}

// stopLanes closes every lane this client reads or writes: Close, or the
// hub is gone.
func (qc *QueueClient) stopLanes() {
	qc.mu.Lock()
	qc.laneStop = true
	for _, l := range qc.clanes {
		l.conn.Close()
		signal(l.more)
	}
	for _, ev := range qc.deferred {
		if ev.conn != nil {
			ev.conn.Close()
		}
	}
	qc.mu.Unlock()
	qc.wmu.Lock()
	if qc.lane.conn != nil {
		qc.lane.conn.Close() // a write in progress fails; flushLocked ends the lane
	}
	qc.wmu.Unlock()
}

// testHookLaneWrote, if set (by tests only), is called after each lane
// write with the values written in all, before the hub is told.
var testHookLaneWrote func(conn *net.UnixConn, total int)

// testHookLaneTook, if set (by tests only), is called after a consumer
// made values read from a lane available to Get.
var testHookLaneTook func()

// testHookLaneRead, if set (by tests only), is called before a consumer
// takes a frame it read from a lane.
var testHookLaneRead func()

// closeWriteWait is how long Close waits for writes to the hub and on a
// lane, in all (a peer that is alive and reads nothing).
const closeWriteWait = 5 * time.Second

// laneGiveBackWait is how long Close waits for lanes to end before it
// gives up giving values back.
const laneGiveBackWait = 5 * time.Second
