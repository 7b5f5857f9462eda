package ipc

// Lanes: a direct path for values from one producer to one consumer,
// with the hub still the authority for everything else. Off unless the
// owner calls Queue.EnableLanes.
//
// # Why
//
// Relayed, a value crosses two sockets (producer to hub, hub to consumer):
// two copies into and out of the kernel and the skb work of each hop, in
// three processes. On a lane it crosses one socket pair between the two
// endpoints; only counts and markers go through the hub.
//
// # Protocol
//
// A lane is a SOCK_STREAM socket pair the hub makes and passes to both
// endpoints over their hub connections (SCM_RIGHTS, with qLaneOpenP and
// qLaneOpenC). Values on it are frames of records exactly like qItems.
// Each lane is used for one run and then closed by the producer; a new
// run makes a new lane.
//
//  1. A windowed producer that is streaming (PutWindow > 1 and at least
//     laneAskAt values in flight) sends qLaneAsk and from then on sends no
//     put to the hub until it is answered: its later puts wait in its own
//     buffer. So when the hub handles qLaneAsk, every value that producer
//     sent before is already handled.
//  2. The hub opens a lane (unless lanes are off, which the answer says
//     once for all, or the queue is closed) to the first endpoint asking
//     for values, or if none asks to any endpoint that said it reads
//     lanes (qLaneOK: GetWindow > 1, withdrawn by its revoke), is not the
//     producer and has no open lane. Otherwise it answers qLaneNo and the
//     producer sends what it kept as puts and relays laneRetry values
//     before it asks again. Values of this producer still in the buffer
//     or waiting for room are fine: asks are delegated only while the
//     buffer is empty (step 3), so they are handed out first.
//  3. Delegation: the hub takes all of that consumer's asks out of the
//     queue of asks and tells the consumer, in order in its own hub
//     stream, qLaneItems(id, k): "k of your asks will be met by lane id",
//     and the producer qLaneCredit(k). While the lane is open, every later
//     ask of that consumer that finds the buffer empty is delegated the
//     same way. A producer writes at most its credit on the lane; with
//     values and no credit it says qLaneStarved once, and the hub ends the
//     lane if another consumer is waiting (a stuck consumer holds up its
//     lane's producer only until someone else wants values). A consumer
//     whose Get has waited dryAskDelay with nothing to take says qLaneDry:
//     its asks may be on a lane whose producer is idle, so once values
//     wait in the hub's buffer (another producer's) the hub ends its lanes
//     and the asks come back (step 5). A later ask clears the flag.
//  4. Counting: the producer reports the total it wrote (qLaneWrote, in
//     bulk: once a quarter of its PutWindow is unreported, at once while a
//     Put or Flush waits, and at the lane's end) and the hub counts values
//     when reported: they are
//     put (Join waits for them) and handed to the consumer (lost with it
//     if it dies, QueueStats.Stranded), and the hub acknowledges them with
//     qAck, so Flush and PutWindow work as for relayed puts. The consumer
//     reports the total it read too: before any TaskDone that follows new
//     lane values (qLaneRead; else a TaskDone could reach the hub before
//     the producer's report, or, if the producer was killed, instead of
//     it) and when the lane ends (qLaneReadEnd). The hub counts the larger
//     of the two totals, and drops an endpoint that claims more than the
//     lane was given.
//  5. End: the hub sends qLaneEnd (Close, the consumer's revoke or death,
//     another consumer starving); the producer writes what its credit
//     allows, closes its end, sends qLaneDone(total) and goes back to
//     relaying what is left. The hub then tells the consumer qLaneClosed
//     in its hub stream. The consumer takes nothing that follows
//     qLaneClosed in its stream (values, EOF) before it has read the lane
//     to its end, since relayed values of that producer may follow. Credit
//     not used is given back by the consumer itself: it knows what was
//     delegated (the qLaneItems) and what it read, and asks again.
//  6. The hub sends EOF to a consumer only when it has no lane whose
//     producer has not closed it, so EOF comes after every lane value.
//
// A producer that dies closes its lane (the kernel does): the consumer
// reads every whole frame written and drops a torn last one. A consumer
// that dies makes the producer's writes fail (EPIPE): values not written
// go back to relaying; those written are counted as stranded with it.

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// laneAskAt is how many puts a producer must have in flight before it asks
// for a lane: a lone value never waits for the lane's round trip.
const laneAskAt = 256

// laneRetry is how many values a producer relays after a refused ask
// before it asks again.
const laneRetry = 1 << 14

// laneFrame bounds the records in one frame on a lane.
const laneFrame = 128 << 10

// hubLane is the hub's record of one lane.
type hubLane struct {
	id       uint32
	p, c     *hubConn // c is nil once the consumer is dropped
	credited int      // asks delegated to it
	counted  int      // values counted (the larger of the two reports)
	pAcked   int      // of the producer's reported total, acknowledged
	pDone    bool     // the producer closed it (or was dropped)
	cDone    bool     // the consumer read it to its end
	ending   bool     // qLaneEnd was sent
	starved  bool     // the producer has values and no credit
}

// EnableLanes lets values go straight from a producer to a consumer on a
// socket pair of their own when the topology allows (see the package doc,
// section Queue, and queue_lane_linux.go). Call it before the endpoints
// start.
func (q *Queue) EnableLanes() {
	q.mu.Lock()
	q.lanesOn = true
	q.mu.Unlock()
}

// laneAsk answers a producer's qLaneAsk; q.mu is held.
func (q *Queue) laneAsk(hc *hubConn, t *touched) error {
	no := func() { q.reply(hc, t, func(o *outBuf) { o.addCount(qLaneNo, 0, false) }) }
	if hc.plane != nil {
		return fmt.Errorf("asked for a second lane: %w", errBadFrame)
	}
	if !q.lanesOn {
		// Never: the producer stops asking.
		q.reply(hc, t, func(o *outBuf) { o.addCount(qLaneNo, 1, false) })
		return nil
	}
	if q.closed {
		no()
		return nil
	}
	// The consumer: the first one asking, or else any that reads lanes
	// and has none. Values of hc still in the buffer or waiting for room
	// are handed out before the lane gets any ask (delegate runs only
	// with the buffer empty), so they come before the lane's values.
	var c *hubConn
	if len(q.gets) > 0 {
		c = q.gets[0].hc
	} else {
		for o := range q.conns {
			if o != hc && o.laneOK && o.clanes == 0 {
				c = o
				break
			}
		}
	}
	if c == nil || c == hc || !c.laneOK || c.clanes > 0 {
		no()
		return nil
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		no()
		return nil
	}
	sizeStreamBuf(fds[0])
	sizeStreamBuf(fds[1])
	q.laneSeq++
	l := &hubLane{id: q.laneSeq, p: hc, c: c}
	q.lanes = append(q.lanes, l)
	q.lanesOpened++
	hc.plane = l
	c.clanes++
	c.dry = false // said of the lanes it had
	pf, cf := os.NewFile(uintptr(fds[0]), "lane-p"), os.NewFile(uintptr(fds[1]), "lane-c")
	q.reply(hc, t, func(o *outBuf) { o.addCount(qLaneOpenP, int(l.id), false) })
	hc.addFile(pf)
	q.reply(c, t, func(o *outBuf) { o.addCount(qLaneOpenC, int(l.id), false) })
	c.addFile(cf)
	q.delegate(l, t)
	return nil
}

// delegate gives all of the lane consumer's asks to the lane; q.mu is
// held.
func (q *Queue) delegate(l *hubLane, t *touched) {
	c := l.c
	if c == nil || l.pDone || l.ending || c.grant == 0 || q.buf.n != 0 {
		return
	}
	k := c.grant
	q.unwait(c)
	l.credited += k
	l.starved = false
	q.reply(c, t, func(o *outBuf) { o.addSeq(qLaneItems, uint64(l.id)<<32|uint64(k)) })
	q.reply(l.p, t, func(o *outBuf) { o.addCount(qLaneCredit, k, false) })
}

// endLane asks the lane's producer to close it; q.mu is held.
func (q *Queue) endLane(l *hubLane, t *touched) {
	if l.pDone || l.ending {
		return
	}
	l.ending = true
	q.reply(l.p, t, func(o *outBuf) { o.addEmpty(qLaneEnd) })
}

// laneCount counts a report of total values on the lane; q.mu is held. An
// error means the reporter claims more than the lane was given.
func (q *Queue) laneCount(l *hubLane, total int, t *touched) error {
	if total > l.credited {
		return fmt.Errorf("lane %d: %d values reported, %d delegated: %w", l.id, total, l.credited, errBadFrame)
	}
	if total <= l.counted {
		return nil
	}
	d := total - l.counted
	l.counted = total
	q.unfin += d
	q.laneValues += d
	if l.c != nil {
		l.c.handed += d
	} else {
		// Written for a consumer that died: lost with it.
		q.stranded += d
		q.finish(d, t)
	}
	return nil
}

// laneProducer handles a producer's lane reports; q.mu is held.
func (q *Queue) laneProducer(hc *hubConn, op byte, p []byte, t *touched) error {
	switch op {
	case qLaneAsk:
		return q.laneAsk(hc, t)
	case qLaneStarved:
		l := hc.plane
		if l == nil {
			return nil
		}
		if l.c != nil && l.c.grant > 0 && q.buf.n == 0 {
			q.delegate(l, t)
		} else if q.othersAsking(l.c) {
			q.endLane(l, t)
		} else {
			l.starved = true
		}
		return nil
	}
	total, err := parseCount(p)
	if err != nil {
		return err
	}
	l := hc.plane
	if l == nil {
		return fmt.Errorf("lane report without a lane: %w", errBadFrame)
	}
	if err := q.laneCount(l, total, t); err != nil {
		return err
	}
	if total < l.pAcked {
		return fmt.Errorf("lane total went back: %w", errBadFrame)
	}
	if d := total - l.pAcked; d > 0 {
		l.pAcked = total
		q.reply(hc, t, func(o *outBuf) { o.addCount(qAck, d, true) })
	}
	if op == qLaneDone {
		q.laneProducerGone(l, t)
	}
	return nil
}

// laneProducerGone records that the lane's producer closed it (or died);
// q.mu is held.
func (q *Queue) laneProducerGone(l *hubLane, t *touched) {
	l.pDone = true
	l.p.plane = nil
	q.lanes = slices.DeleteFunc(q.lanes, func(o *hubLane) bool { return o == l })
	if l.c != nil {
		q.reply(l.c, t, func(o *outBuf) { o.addCount(qLaneClosed, int(l.id), false) })
		l.c.clanes--
		if !l.cDone {
			l.c.cread = append(l.c.cread, l)
		}
	}
	q.pump(t)
}

// laneConsumer handles a consumer's report on a lane (qLaneRead before
// its TaskDones, qLaneReadEnd at the lane's end); q.mu is held.
func (q *Queue) laneConsumer(hc *hubConn, op byte, p []byte, t *touched) error {
	v, err := parseSeq(p)
	if err != nil {
		return err
	}
	id, total := uint32(v>>32), int(uint32(v))
	for _, l := range q.lanes {
		if l.id == id && l.c == hc && !l.cDone {
			l.cDone = op == qLaneReadEnd
			return q.laneCount(l, total, t)
		}
	}
	for i, l := range hc.cread {
		if l.id == id {
			if op == qLaneReadEnd {
				l.cDone = true
				hc.cread = slices.Delete(hc.cread, i, i+1)
			}
			return q.laneCount(l, total, t)
		}
	}
	return fmt.Errorf("report on lane %d it does not have: %w", id, errBadFrame)
}

// othersAsking reports whether an endpoint other than c waits for values.
func (q *Queue) othersAsking(c *hubConn) bool {
	for _, g := range q.gets {
		if g.hc != c {
			return true
		}
	}
	return false
}

// laneAfterAsk delegates a lane consumer's new asks when the buffer is
// empty; q.mu is held.
func (q *Queue) laneAfterAsk(hc *hubConn, t *touched) {
	for _, l := range q.lanes {
		if l.c == hc && q.buf.n == 0 {
			q.delegate(l, t)
		}
	}
}

// laneTick serves starved lanes once the buffer is empty: with the
// consumer's asks, or by ending the lane when another consumer waits. With
// values in the buffer it ends the lanes of consumers that said they are
// dry: their asks are on those lanes, whose producers have nothing to
// send, and only the end of the lane gives them back (the consumer then
// asks again, and gets the buffer's values). q.mu is held.
func (q *Queue) laneTick(t *touched) {
	if q.buf.n != 0 {
		for _, l := range q.lanes {
			if l.c != nil && l.c.dry {
				q.endLane(l, t)
			}
		}
		return
	}
	for _, l := range q.lanes {
		if !l.starved {
			continue
		}
		if l.c != nil && l.c.grant > 0 {
			q.delegate(l, t)
		} else if q.othersAsking(l.c) {
			q.endLane(l, t)
		}
	}
}

// laneDrop ends the lanes of an endpoint being dropped; q.mu is held.
func (q *Queue) laneDrop(hc *hubConn, t *touched) {
	if l := hc.plane; l != nil {
		q.laneProducerGone(l, t)
	}
	for _, l := range slices.Clone(q.lanes) {
		if l.c == hc {
			l.c = nil
			q.endLane(l, t)
		}
	}
	for _, l := range hc.cread {
		l.c = nil
	}
	hc.cread = nil
}

// laneRevoke ends the lanes of a consumer that withdrew its asks; q.mu is
// held.
func (q *Queue) laneRevoke(hc *hubConn, t *touched) {
	hc.laneOK = false // it is closing: no new lane
	for _, l := range q.lanes {
		if l.c == hc {
			q.endLane(l, t)
		}
	}
}

// laneClose ends every lane: the queue is closed; q.mu is held.
func (q *Queue) laneClose(t *touched) {
	for _, l := range q.lanes {
		q.endLane(l, t)
	}
}

// addFile queues f to go with the next write to hc (SCM_RIGHTS); the hub
// closes its copy once it is sent.
func (hc *hubConn) addFile(f *os.File) {
	hc.outMu.Lock()
	hc.outFiles = append(hc.outFiles, f)
	hc.outMu.Unlock()
}

// writeOut writes b to hc, with files if any, and closes them.
func (hc *hubConn) writeOut(b []byte, files []*os.File) error {
	if len(files) == 0 {
		_, err := hc.nc.Write(b)
		return err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	n, _, err := hc.nc.WriteMsgUnix(b, unix.UnixRights(fds...), nil)
	for _, f := range files {
		f.Close()
	}
	if err == nil && n < len(b) {
		_, err = hc.nc.Write(b[n:])
	}
	return err
}

// fdReader reads a stream socket with recvmsg, keeping the files that
// arrive with it (SCM_RIGHTS) in order.
type fdReader struct {
	nc    *net.UnixConn
	oob   []byte
	files []*os.File
}

// maxRights is the most files one sendmsg can carry (the kernel's
// SCM_MAX_FD): the hub sends every lane socket queued for an endpoint with
// one write, and files that do not fit in the reader's room would be lost.
const maxRights = 253

func newFdReader(nc *net.UnixConn) *fdReader {
	return &fdReader{nc: nc, oob: make([]byte, unix.CmsgSpace(4*maxRights))}
}

func (r *fdReader) Read(b []byte) (int, error) {
	n, oobn, flags, _, err := r.nc.ReadMsgUnix(b, r.oob)
	if n < 0 {
		n = 0
	}
	if flags&unix.MSG_CTRUNC != 0 && err == nil {
		err = fmt.Errorf("read hub socket: lane sockets lost (control data truncated): %w", errBadFrame)
	}
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(r.oob[:oobn])
		if perr == nil {
			for _, m := range msgs {
				fds, ferr := unix.ParseUnixRights(&m)
				if ferr != nil {
					continue
				}
				for _, fd := range fds {
					unix.CloseOnExec(fd)
					r.files = append(r.files, os.NewFile(uintptr(fd), "lane"))
				}
			}
		}
	}
	return n, err
}

// next returns the oldest file received, or nil.
func (r *fdReader) next() *os.File {
	if len(r.files) == 0 {
		return nil
	}
	f := r.files[0]
	r.files = r.files[1:]
	return f
}

// closeAll closes the files received and not taken.
func (r *fdReader) closeAll() {
	for _, f := range r.files {
		f.Close()
	}
	r.files = nil
}

// laneHdr is a records frame's header on a lane.
func laneHdr(recs []byte, n int) []byte {
	h := make([]byte, recsHdr)
	binary.LittleEndian.PutUint32(h, uint32(1+4+len(recs)))
	h[frameHdr] = qItems
	binary.LittleEndian.PutUint32(h[frameHdr+1:], uint32(n))
	return h
}
