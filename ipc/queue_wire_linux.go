package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// The queue's wire format, between a QueueClient and the hub. It is not
// msgpack: values are opaque bytes, and the hub moves them in whole runs
// without decoding them.
//
// A frame is a 4-byte little-endian length n, then n bytes: an op byte and
// its payload. Counts are little-endian uint32, join sequence numbers
// uint64. A records payload is a uint32 count, then that many records, each
// a uint32 length and that many bytes (one value).
const (
	// Client to hub.
	qPuts       = 1 // records: values for the queue, in order
	qGrant      = 2 // count: the client asks for that many more values
	qRevoke     = 3 // empty: withdraw every value asked for and not yet sent
	qCancelPuts = 4 // empty: withdraw every put still waiting for room
	qTaskDone   = 5 // count: that many values dealt with
	qJoin       = 6 // seq: answer with qJoined once every value is done
	qCancelJoin = 7 // seq: forget that join
	qRequeue    = 8 // records: values given back, to the front of the queue
	qBye        = 9 // empty: a clean close; nothing the client holds is lost

	// Lanes (queue_lane_linux.go), client to hub.
	qLaneAsk     = 10 // empty: a producer asks for a lane; it sends no puts until answered
	qLaneStarved = 11 // empty: a lane producer has values and no credit
	qLaneWrote   = 12 // count: a lane producer's values written on its lane, in all
	qLaneDone    = 13 // count: the same, and the producer closed its end of the lane
	qLaneRead    = 14 // id, count: a consumer read that many values from lane id, in all
	qLaneOK      = 15 // empty: a consumer that can read lanes
	qLaneReadEnd = 16 // id, count: the same, and it read the lane to its end
	qLaneDry     = 17 // empty: a lane consumer has nothing to take (its asks may be on an idle lane)

	// Hub to client.
	qAck       = 20 // count: that many more puts taken, oldest first
	qRefused   = 21 // count: that many puts refused, the queue is closed
	qCancelled = 22 // count: answer to qCancelPuts, puts withdrawn
	qItems     = 23 // records: values for a client that asked
	qEOF       = 24 // empty: closed and empty; every ask is dropped
	qRevoked   = 25 // count: answer to qRevoke, asks withdrawn
	qJoined    = 26 // seq: answer to qJoin
	qError     = 27 // code: a misuse, reported by the client's next TaskDone

	// Lanes, hub to client.
	qLaneOpenP  = 30 // id, with a socket (SCM_RIGHTS): the producer's end of lane id
	qLaneOpenC  = 31 // id, with a socket: the consumer's end of lane id
	qLaneCredit = 32 // count: that many more values may go on the producer's lane
	qLaneNo     = 33 // empty: answer to qLaneAsk, no lane; send puts to the hub
	qLaneEnd    = 34 // empty: stop using the lane, answer with qLaneDone
	qLaneItems  = 35 // id, count: that many of the values asked for come on lane id
	qLaneClosed = 36 // id: the producer of lane id closed it: what follows may come after its values
)

// Error codes of qError.
const (
	qErrTooManyTaskDone = 1
	qErrUnknownOp       = 2
)

// errTooManyTaskDone is what the hub reports when TaskDone is called more
// times than values were taken.
var errTooManyTaskDone = errors.New("TaskDone called more times than there were values")

func queueErrorCode(code uint32) error {
	switch code {
	case qErrTooManyTaskDone:
		return errTooManyTaskDone
	case qErrUnknownOp:
		return errors.New("hub: unknown queue operation")
	}
	return fmt.Errorf("hub: error code %d", code)
}

const (
	// MaxQueueValue is the largest value a Queue carries, in bytes.
	MaxQueueValue = 16 << 20
	// MaxQueueWindow is the largest PutWindow and GetWindow.
	MaxQueueWindow = 1 << 20

	frameHdr  = 4                // the length
	recsHdr   = frameHdr + 1 + 4 // length, op, count
	recHdr    = 4                // a record's length
	recsBatch = 64 << 10         // a records frame is closed once its body reaches this
	chunkSize = 64 << 10         // the hub stores values in chunks of this size
	maxBody   = 1 + 4 + recHdr + MaxQueueValue + recsBatch
	readBuf   = 256 << 10 // the buffer frames are read into
)

// outBuf is a sequence of frames being built, written out as one buffer.
// The last records frame stays open so that values added one by one share
// a frame; the last count frame stays open so that acknowledgements and
// TaskDones add up instead of making a frame each.
type outBuf struct {
	b       []byte
	openAt  int // 1 + offset of the open records frame, 0 if none
	openN   int // records in it
	countAt int // 1 + offset of the count frame at the very end, 0 if none
	countOp byte
}

func (o *outBuf) len() int { return len(o.b) }

// seal writes the open records frame's length and count.
func (o *outBuf) seal() {
	if o.openAt == 0 {
		return
	}
	at := o.openAt - 1
	binary.LittleEndian.PutUint32(o.b[at:], uint32(len(o.b)-at-frameHdr))
	binary.LittleEndian.PutUint32(o.b[at+frameHdr+1:], uint32(o.openN))
	o.openAt, o.openN = 0, 0
}

// openRecords makes sure a records frame of op is open with room for n
// more bytes, and returns nothing: records are then appended to o.b.
func (o *outBuf) openRecords(op byte, n int) {
	if o.openAt != 0 {
		at := o.openAt - 1
		if o.b[at+frameHdr] == op && len(o.b)-at-frameHdr+n <= recsBatch {
			return
		}
		o.seal()
	}
	o.countAt = 0
	o.openAt = len(o.b) + 1
	o.b = append(o.b, 0, 0, 0, 0, op, 0, 0, 0, 0)
}

// addRecord appends one value to a records frame of op.
func (o *outBuf) addRecord(op byte, v []byte) {
	o.openRecords(op, recHdr+len(v))
	o.b = binary.LittleEndian.AppendUint32(o.b, uint32(len(v)))
	o.b = append(o.b, v...)
	o.openN++
}

// addRecords appends n records, already encoded, to a records frame of op.
func (o *outBuf) addRecords(op byte, recs []byte, n int) {
	o.openRecords(op, len(recs))
	o.b = append(o.b, recs...)
	o.openN += n
}

// addCount appends a count frame of op, or adds n to the one at the end
// when merge is set.
func (o *outBuf) addCount(op byte, n int, merge bool) {
	if merge && o.countAt != 0 && o.countOp == op {
		at := o.countAt - 1 + frameHdr + 1
		binary.LittleEndian.PutUint32(o.b[at:], binary.LittleEndian.Uint32(o.b[at:])+uint32(n))
		return
	}
	o.seal()
	o.countAt, o.countOp = len(o.b)+1, op
	o.b = append(o.b, 5, 0, 0, 0, op)
	o.b = binary.LittleEndian.AppendUint32(o.b, uint32(n))
}

// addSeq appends a frame of op carrying a sequence number.
func (o *outBuf) addSeq(op byte, seq uint64) {
	o.seal()
	o.countAt = 0
	o.b = append(o.b, 9, 0, 0, 0, op)
	o.b = binary.LittleEndian.AppendUint64(o.b, seq)
}

// addEmpty appends a frame of op with no payload.
func (o *outBuf) addEmpty(op byte) {
	o.seal()
	o.countAt = 0
	o.b = append(o.b, 1, 0, 0, 0, op)
}

// take returns the frames built so far, all sealed, and starts again on
// spare's storage.
func (o *outBuf) take(spare []byte) []byte {
	o.seal()
	b := o.b
	o.b = spare[:0]
	o.countAt = 0
	return b
}

// errBadFrame is the cause of every malformed frame.
var errBadFrame = errors.New("malformed queue frame")

// parseRecords splits a records payload into its count and records, and
// checks that the records fill it exactly.
func parseRecords(p []byte) (int, []byte, error) {
	if len(p) < 4 {
		return 0, nil, errBadFrame
	}
	n := int(binary.LittleEndian.Uint32(p))
	recs := p[4:]
	rest := recs
	for range n {
		if len(rest) < recHdr {
			return 0, nil, errBadFrame
		}
		l := binary.LittleEndian.Uint32(rest)
		if uint64(l) > uint64(len(rest)-recHdr) {
			return 0, nil, errBadFrame
		}
		rest = rest[recHdr+int(l):]
	}
	if len(rest) != 0 {
		return 0, nil, errBadFrame
	}
	return n, recs, nil
}

// recsPrefix returns how many bytes the first n of recs's records take,
// and how many there were if fewer than n. recs must be well formed.
func recsPrefix(recs []byte, n int) (int, int) {
	off, k := 0, 0
	for ; k < n && off < len(recs); k++ {
		off += recHdr + int(binary.LittleEndian.Uint32(recs[off:]))
	}
	return off, k
}

// nextRecord returns the value of the record at recs[off:] and the offset
// of the next one. recs must be well formed.
func nextRecord(recs []byte, off int) ([]byte, int) {
	l := int(binary.LittleEndian.Uint32(recs[off:]))
	off += recHdr
	return recs[off : off+l], off + l
}

func parseCount(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, errBadFrame
	}
	return int(binary.LittleEndian.Uint32(p)), nil
}

func parseSeq(p []byte) (uint64, error) {
	if len(p) != 8 {
		return 0, errBadFrame
	}
	return binary.LittleEndian.Uint64(p), nil
}

// frameReader reads frames from a stream, many per read(2) when they are
// small.
type frameReader struct {
	r          io.Reader
	buf        []byte
	start, end int
}

func newFrameReader(r io.Reader, size int) *frameReader {
	return &frameReader{r: r, buf: make([]byte, size)}
}

// whole reports the length of the frame at the start of the buffer if it is
// all there, or -1.
func (fr *frameReader) whole() int {
	if fr.end-fr.start < frameHdr {
		return -1
	}
	n := int(binary.LittleEndian.Uint32(fr.buf[fr.start:]))
	if fr.end-fr.start-frameHdr < n {
		return -1
	}
	return n
}

// buffered reports whether a whole frame is already in the buffer.
func (fr *frameReader) buffered() bool { return fr.whole() >= 0 }

// next returns the next frame's op and payload, valid until the next call.
// It returns io.EOF at a frame boundary, and a wrapped io.ErrUnexpectedEOF
// or errBadFrame for a frame cut short or out of bounds.
func (fr *frameReader) next() (byte, []byte, error) {
	for {
		if n := fr.whole(); n >= 0 {
			if n < 1 || n > maxBody {
				return 0, nil, fmt.Errorf("frame of %d bytes: %w", n, errBadFrame)
			}
			at := fr.start + frameHdr
			fr.start = at + n
			return fr.buf[at], fr.buf[at+1 : at+n], nil
		}
		need := frameHdr
		if fr.end-fr.start >= frameHdr {
			n := int(binary.LittleEndian.Uint32(fr.buf[fr.start:]))
			if n < 1 || n > maxBody {
				return 0, nil, fmt.Errorf("frame of %d bytes: %w", n, errBadFrame)
			}
			need += n
		}
		switch {
		case need > len(fr.buf):
			nb := make([]byte, max(need, 2*len(fr.buf)))
			fr.end = copy(nb, fr.buf[fr.start:fr.end])
			fr.start, fr.buf = 0, nb
		case fr.start == fr.end:
			fr.start, fr.end = 0, 0
		case len(fr.buf)-fr.start < need || len(fr.buf)-fr.end < len(fr.buf)/4:
			fr.end = copy(fr.buf, fr.buf[fr.start:fr.end])
			fr.start = 0
		}
		m, err := fr.r.Read(fr.buf[fr.end:])
		fr.end += m
		if err != nil && m == 0 {
			if err == io.EOF && fr.start != fr.end {
				return 0, nil, io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
}

// socketPair returns a connected pair of stream sockets: one end for the
// hub, the other as a file for an endpoint.
func socketPair() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	sizeStreamBuf(fds[0])
	sizeStreamBuf(fds[1])
	mine := os.NewFile(uintptr(fds[0]), "queue-hub")
	theirs := os.NewFile(uintptr(fds[1]), "queue-endpoint")
	nc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		theirs.Close()
		return nil, nil, err
	}
	return nc.(*net.UnixConn), theirs, nil
}
