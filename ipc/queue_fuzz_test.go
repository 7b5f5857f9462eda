package ipc

import (
	"bytes"
	"testing"
)

// FuzzQueueFrames feeds arbitrary bytes to the queue's frame reader and
// payload parsers, as the hub and a client read them from a peer: they
// must return an error or a frame, never panic, and a records payload they
// accept must encode back to the same bytes.
func FuzzQueueFrames(f *testing.F) {
	var o outBuf
	o.addRecord(qPuts, []byte{0x93, 1, 2, 3})
	o.addRecord(qPuts, make([]byte, 64))
	o.addCount(qGrant, 7, false)
	o.addSeq(qJoin, 1<<40)
	o.addEmpty(qBye)
	f.Add(o.take(nil))
	f.Add([]byte{5, 0, 0, 0, qPuts, 1, 0, 0, 0})
	f.Add([]byte{9, 0, 0, 0, qItems, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, qPuts})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b), 16)
		for {
			op, p, err := fr.next()
			if err != nil {
				return
			}
			switch op {
			case qPuts, qItems, qRequeue:
				n, recs, err := parseRecords(p)
				if err != nil {
					continue
				}
				var o outBuf
				o.addRecords(op, recs, n)
				again := o.take(nil)
				if !bytes.Equal(again[frameHdr+1:], p) && len(p) <= recsBatch {
					t.Fatalf("records %x re-encode as %x", p, again[frameHdr+1:])
				}
				for off, k := 0, 0; k < n; k++ {
					_, off = nextRecord(recs, off)
				}
			case qGrant, qAck, qTaskDone:
				parseCount(p)
			case qJoin, qJoined:
				parseSeq(p)
			}
		}
	})
}
