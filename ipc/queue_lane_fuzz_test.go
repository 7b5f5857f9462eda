package ipc

import (
	"encoding/binary"
	"testing"
)

// fuzzEnd is a raw endpoint of FuzzQueueLaneOps with what it learnt from
// the hub about its lanes.
type fuzzEnd struct {
	*rawEnd
	lane     bool // it writes a lane (qLaneOpenP, no qLaneDone sent)
	asking   bool // qLaneAsk sent, not answered
	credit   int  // qLaneCredit received on its lane
	reported int  // the largest total reported on its lane
	clanes   map[uint32]*fuzzCLane
}

// fuzzCLane is a lane a fuzzEnd reads.
type fuzzCLane struct {
	items int  // qLaneItems received
	ended bool // qLaneReadEnd sent
}

func newFuzzEnd(t testing.TB, q *Queue) *fuzzEnd {
	return &fuzzEnd{rawEnd: newRawEnd(t, q), clanes: make(map[uint32]*fuzzCLane)}
}

// learn notes what the hub said.
func (e *fuzzEnd) learn(frames []rawFrame) {
	for _, f := range frames {
		switch f.op {
		case qLaneOpenP:
			e.lane, e.asking, e.credit, e.reported = true, false, 0, 0
		case qLaneNo:
			e.asking = false
		case qLaneCredit:
			n, _ := parseCount(f.p)
			e.credit += n
		case qLaneOpenC:
			id, _ := parseCount(f.p)
			e.clanes[uint32(id)] = &fuzzCLane{}
		case qLaneItems:
			v, _ := parseSeq(f.p)
			if l := e.clanes[uint32(v>>32)]; l != nil {
				l.items += int(uint32(v))
			} else {
				e.t.Fatalf("qLaneItems for lane %d before it opened", v>>32)
			}
		}
	}
}

// FuzzQueueLaneOps drives a real hub with lanes on through two raw
// endpoints, with a fuzzed sequence of requests (lane ones above all,
// honest or lying), and after each one checks the hub's books (checkHub),
// that it drops an endpoint exactly when that lies about a lane, and at
// the end that it shuts down and leaves no file open. A hang fails with a
// stack dump (rawEnd's deadlines).
func FuzzQueueLaneOps(f *testing.F) {
	// The first net use opens the poller's files: before any count.
	if q, err := NewQueue(1); err == nil {
		newRawEnd(f, q).close()
		q.Shutdown()
	}
	// A lane opened, written, read, ended; the same with a lie or a death
	// on the way; the consumer dying with values on it.
	f.Add([]byte{3, 10, 0, 1, 20, 0x84, 0, 0x92, 3, 19, 3, 3, 3, 0x92, 0x83, 19, 0x83, 1, 8, 0x80, 5, 0x84, 0})
	f.Add([]byte{0, 10, 0, 1, 20, 0x84, 0, 0x92, 3, 19, 9, 0x80, 2, 0x87, 0, 1, 4, 0x85, 30, 3, 1})
	f.Add([]byte{1, 10, 0, 1, 20, 0x84, 0, 0x92, 3, 16, 0, 0x92, 2, 0x80, 3, 1, 5, 0x92, 0x85, 15, 0})
	f.Add([]byte{7, 0x80, 3, 10, 0, 1, 6, 0x84, 0, 0x92, 2, 19, 2, 0x8f, 0, 13, 1, 0x90, 0, 19, 0x82, 3, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		fds := openFDs(t)
		q, err := NewQueue(1 + int(in[0]%8))
		if err != nil {
			t.Fatal(err)
		}
		q.EnableLanes()
		ends := [2]*fuzzEnd{newFuzzEnd(t, q), newFuzzEnd(t, q)}
		defer func() {
			for _, e := range ends {
				e.close()
			}
			q.Shutdown()
			if n := openFDs(t); n != fds {
				t.Fatalf("%d files open, %d before", n, fds)
			}
		}()
		seq := uint64(0)
		for i := 1; i+1 < min(len(in), 1+2*maxFuzzOps); i += 2 {
			who, kind, arg := int(in[i]>>7), int(in[i]&0x7f)%21, int(in[i+1])
			e := ends[who]
			var o outBuf
			lie := -1 // 1: the hub must drop e, 0: it must not, -1: either
			switch kind {
			case 0:
				for range 1 + arg%8 {
					seq++
					o.addRecord(qPuts, binary.LittleEndian.AppendUint64(nil, seq))
				}
				lie = 0
			case 1:
				o.addCount(qGrant, arg%32, false)
				lie = 0
			case 2:
				o.addEmpty(qRevoke)
				lie = 0
			case 3:
				o.addCount(qTaskDone, arg%4, false)
				lie = 0
			case 4:
				o.addEmpty(qLaneAsk)
				lie = b2i(e.lane)
				e.asking = true
			case 5, 6, 18:
				total := arg % 16
				if kind == 18 { // mostly honest
					total = min(e.credit, e.reported+arg%4)
				}
				op := byte(qLaneWrote)
				if kind == 6 || kind == 18 && arg&0x80 != 0 {
					op = qLaneDone
				}
				o.addCount(op, total, false)
				lie = b2i(!e.lane || total > e.credit || total < e.reported)
				e.reported = max(e.reported, total)
				if op == qLaneDone {
					e.lane = false
				}
			case 7:
				o.addEmpty(qLaneStarved)
				if arg&1 != 0 {
					o = outBuf{}
					o.addEmpty(qLaneBlocked)
				}
				lie = 0
			case 8, 9, 19:
				id, total := uint32(1+arg>>4), arg&15
				if kind == 19 { // mostly honest
					for lid, l := range e.clanes {
						if !l.ended {
							id, total = lid, min(l.items, arg&15)
						}
					}
				}
				op := byte(qLaneRead)
				if kind == 9 || kind == 19 && arg&0x80 != 0 {
					op = qLaneReadEnd
				}
				o.addSeq(op, uint64(id)<<32|uint64(total))
				l := e.clanes[id]
				lie = b2i(l == nil || l.ended || total > l.items)
				if l != nil && op == qLaneReadEnd {
					l.ended = true
				}
			case 10:
				o.addEmpty(qLaneOK)
				lie = 0
			case 11:
				n := 1 + arg%4
				for range n {
					o.addRecord(qRequeue, []byte{byte(n)})
				}
			case 12:
				o.addEmpty(qBye)
				lie = 0
			case 13:
				o.addSeq(qJoin, uint64(arg))
				lie = 0
			case 14:
				o.addEmpty(qCancelPuts)
				lie = 0
			case 15:
				q.Close()
			case 16:
				// The endpoint dies; another takes its place.
				e.close()
				ends[who] = newFuzzEnd(t, q)
				e = ends[who]
			case 17:
				o.addSeq(qCancelJoin, uint64(arg))
				lie = 0
			case 20:
				// A lying frame on the wire: unknown lengths are the
				// frame fuzzer's; here a count op with no count.
				o.addEmpty(qLaneWrote)
				lie = 1
			}
			if e.gone {
				lie = -1
			}
			e.send(&o)
			// The sender first: what its request caused for the other
			// is queued before the other's barrier.
			for _, x := range [2]*fuzzEnd{e, ends[1-who]} {
				was := x.gone
				x.learn(x.sync())
				if x == e && !was && lie >= 0 && x.gone != (lie == 1) {
					t.Fatalf("op %d (kind %d, arg %d): dropped %v, want %v", i/2, kind, arg, x.gone, lie == 1)
				}
			}
			checkHub(t, q)
		}
	})
}

// maxFuzzOps bounds the requests of one run, which stays short.
const maxFuzzOps = 256

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkHub checks that the hub's books agree with each other.
func checkHub(t testing.TB, q *Queue) {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("hub books: "+format, args...)
	}
	if q.unfin < 0 || q.stranded < 0 || q.buf.n < 0 {
		fail("unfinished %d, stranded %d, buffered %d", q.unfin, q.stranded, q.buf.n)
	}
	if q.unfin == 0 && len(q.joins) > 0 {
		fail("%d joins wait with nothing unfinished", len(q.joins))
	}
	grants, held := map[*hubConn]int{}, map[*hubConn]int{}
	for _, g := range q.gets {
		if g.n <= 0 {
			fail("an ask of %d", g.n)
		}
		grants[g.hc] += g.n
	}
	for _, p := range q.puts {
		held[p.hc] += p.n
	}
	clanes := map[*hubConn]int{}
	planes := map[*hubConn]*hubLane{}
	for _, l := range q.lanes {
		if l.pDone || l.counted > l.credited || l.counted < 0 {
			fail("lane %d: %+v", l.id, *l)
		}
		if _, ok := q.conns[l.p]; !ok {
			fail("lane %d: its producer is gone", l.id)
		}
		if planes[l.p] != nil {
			fail("two lanes from one producer")
		}
		planes[l.p] = l
		if l.c != nil {
			if _, ok := q.conns[l.c]; !ok {
				fail("lane %d: its consumer is gone", l.id)
			}
			clanes[l.c]++
		}
	}
	for hc := range q.conns {
		if hc.grant != grants[hc] || hc.held != held[hc] || hc.handed < 0 || hc.joins < 0 {
			fail("endpoint: grant %d (asks %d), held %d (puts %d), handed %d, joins %d",
				hc.grant, grants[hc], hc.held, held[hc], hc.handed, hc.joins)
		}
		if hc.clanes != clanes[hc] || hc.plane != planes[hc] {
			fail("endpoint: reads %d lanes (%d), writes %p (%p)", hc.clanes, clanes[hc], hc.plane, planes[hc])
		}
		for _, l := range hc.cread {
			if !l.pDone || l.cDone || l.c != hc || l.counted > l.credited {
				fail("lane %d read to its end: %+v", l.id, *l)
			}
		}
	}
}
