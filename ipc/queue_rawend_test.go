package ipc

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// qBarrier is an op the hub does not know: it answers it with qError, in
// order after every reply to what the endpoint sent before.
const qBarrier = 0xee

// rawEnd is an endpoint of a Queue that speaks raw frames, for tests that
// drive the hub op by op. It closes every socket it receives at once and
// counts them.
type rawEnd struct {
	t     testing.TB
	nc    *net.UnixConn
	buf   []byte
	oob   []byte
	fds   int  // sockets received
	opens int  // lane-opening messages read
	gone  bool // the hub hung up
}

type rawFrame struct {
	op byte
	p  []byte
}

func newRawEnd(t testing.TB, q *Queue) *rawEnd {
	t.Helper()
	f, err := q.Attach()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return &rawEnd{t: t, nc: nc.(*net.UnixConn), oob: make([]byte, unix.CmsgSpace(4*maxRights))}
}

// send writes the frames of o; an endpoint the hub dropped ignores them.
func (e *rawEnd) send(o *outBuf) {
	b := o.take(nil)
	if e.gone {
		return
	}
	e.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := e.nc.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			e.hung("write")
		}
		e.gone = true
	}
}

// hung fails the test with every goroutine's stack.
func (e *rawEnd) hung(what string) {
	b := make([]byte, 1<<20)
	b = b[:runtime.Stack(b, true)]
	e.t.Fatalf("hub hung (%s):\n%s", what, b)
}

// sync sends a barrier and returns the frames the hub sent before its
// answer, or those up to its hanging up (e.gone is then set).
func (e *rawEnd) sync() []rawFrame {
	var o outBuf
	o.addEmpty(qBarrier)
	e.send(&o)
	var frames []rawFrame
	for !e.gone {
		for len(e.buf) >= frameHdr {
			size := int(binary.LittleEndian.Uint32(e.buf))
			if size < 1 || len(e.buf) < frameHdr+size {
				break
			}
			f := rawFrame{e.buf[frameHdr], append([]byte(nil), e.buf[frameHdr+1:frameHdr+size]...)}
			e.buf = e.buf[frameHdr+size:]
			if f.op == qLaneOpenP || f.op == qLaneOpenC {
				e.opens++
				if e.fds < e.opens {
					e.t.Fatalf("lane opened (op %d) without its socket", f.op)
				}
			}
			if f.op == qError {
				if n, _ := parseCount(f.p); n == qErrUnknownOp {
					return frames
				}
			}
			frames = append(frames, f)
		}
		e.read()
	}
	return frames
}

// read reads what the hub sent, closing the sockets that came with it.
func (e *rawEnd) read() {
	b := make([]byte, 64<<10)
	e.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, oobn, flags, _, err := e.nc.ReadMsgUnix(b, e.oob)
	if flags&unix.MSG_CTRUNC != 0 {
		e.t.Fatal("lane sockets lost: control data truncated")
	}
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(e.oob[:oobn])
		if perr != nil {
			e.t.Fatal(perr)
		}
		for _, m := range msgs {
			fds, ferr := unix.ParseUnixRights(&m)
			if ferr != nil {
				e.t.Fatal(ferr)
			}
			for _, fd := range fds {
				unix.Close(fd)
				e.fds++
			}
		}
	}
	e.buf = append(e.buf, b[:max(n, 0)]...)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			e.hung("read")
		}
		e.gone = true
	}
}

func (e *rawEnd) close() { e.nc.Close() }
