package ipc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// Network is the kind of Unix socket a Conn runs on.
type Network string

const (
	Stream    Network = "unix"       // SOCK_STREAM: frames carry a length prefix
	SeqPacket Network = "unixpacket" // SOCK_SEQPACKET: one frame per datagram
)

// DefaultMaxFrame is the largest frame a Conn accepts unless told otherwise.
const DefaultMaxFrame = 16 << 20

// DefaultFrameTimeout is how long a Conn waits for the rest of a frame
// once its first bytes have arrived, unless told otherwise (SetFrameTimeout).
const DefaultFrameTimeout = 30 * time.Second

// batchLimit is the frame size at which Buffer writes the frame out on its
// own, so a long batch does not build one huge frame.
const batchLimit = 64 << 10

const headerLen = 4

// ErrFrameTooLarge is matched (with errors.Is) by every *FrameError about a
// frame over the maximum size.
var ErrFrameTooLarge = errors.New("frame too large")

// ErrFrameIdle is matched (with errors.Is) by the *FrameError of a frame
// whose sender stopped in its middle for longer than the frame timeout.
var ErrFrameIdle = errors.New("peer idle inside a frame")

var errEmptyFrame = errors.New("empty frame")

// FrameError reports a frame that breaks the framing rules: longer than the
// maximum, empty, cut short, stalled, or with msgpack values that do not
// fit in it.
type FrameError struct {
	Size int   // the frame's length, as announced or as far as it got
	Max  int   // the maximum in force
	Err  error // ErrFrameTooLarge, ErrFrameIdle, ErrTooDeep, io.ErrUnexpectedEOF, or another cause
}

func (e *FrameError) Error() string {
	switch {
	case errors.Is(e.Err, ErrFrameTooLarge):
		return fmt.Sprintf("frame of %d bytes is over the %d-byte maximum", e.Size, e.Max)
	case errors.Is(e.Err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("truncated frame: connection closed inside a frame of %d bytes", e.Size)
	case errors.Is(e.Err, ErrFrameIdle):
		return fmt.Sprintf("frame of %d bytes: %v", e.Size, e.Err)
	}
	return fmt.Sprintf("bad frame of %d bytes: %v", e.Size, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// A Conn is a framed msgpack connection over a Unix socket. One goroutine
// may send while another receives; sends are serialized with each other, and
// so are receives.
//
// A receive that ends early (its context ended, or a deadline passed) keeps
// the part of a frame it read, and the next receive goes on from there. A
// frame that breaks the stream's framing (over the maximum, cut short by
// the peer's close, or stalled past the frame timeout) leaves the rest of
// the stream out of step: every later receive returns the same error.
// Likewise a send cut short in the middle of a frame makes every later
// send fail.
type Conn struct {
	nc           *net.UnixConn
	raw          syscallConn
	network      Network
	maxFrame     int
	frameTimeout time.Duration // under rmu

	wmu     ctxMutex
	wbuf    frameBuf
	enc     *msgpack.Encoder
	pending int   // values in wbuf not yet written
	werr    error // a frame was cut short: no more sends
	wdl     deadline

	rmu  ctxMutex
	hdr  [headerLen]byte
	br   *bufio.Reader // stream only
	rbuf []byte
	rd   bytes.Reader
	dec  *msgpack.Decoder
	rerr error // the stream is out of step: no more receives
	rdl  deadline
	// A stream frame being read: got bytes so far (header included) of
	// a body of size bytes (0 until the header is complete); armed when
	// the frame deadline is set.
	got, size int
	armed     bool
	frameLeft time.Duration // of the frame timeout, when a receive ended early
}

type syscallConn interface {
	Read(func(fd uintptr) bool) error
	Control(func(fd uintptr)) error
}

// frameBuf is the frame being built: headerLen bytes reserved for the
// length, then the encoded values. It implements io.ByteWriter so the
// encoder writes to it directly.
type frameBuf struct{ b []byte }

func (f *frameBuf) Write(p []byte) (int, error) { f.b = append(f.b, p...); return len(p), nil }
func (f *frameBuf) WriteByte(c byte) error      { f.b = append(f.b, c); return nil }

// NewConn returns a Conn over nc, which must be a stream or seqpacket Unix
// socket. The Conn owns nc.
func NewConn(nc *net.UnixConn) (*Conn, error) {
	network := Network(nc.LocalAddr().Network())
	if network != Stream && network != SeqPacket {
		return nil, fmt.Errorf("new conn: network %q, want unix or unixpacket", network)
	}
	raw, err := nc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("new conn: %w", err)
	}
	c := &Conn{nc: nc, raw: raw, network: network, maxFrame: DefaultMaxFrame, frameTimeout: DefaultFrameTimeout,
		wmu: newCtxMutex(), rmu: newCtxMutex()}
	c.wdl.set = nc.SetWriteDeadline
	c.rdl.set = nc.SetReadDeadline
	c.wbuf.b = make([]byte, headerLen, 4096)
	c.enc = msgpack.NewEncoder(&c.wbuf)
	c.enc.UseCompactInts(true)
	c.dec = msgpack.NewDecoder(&c.rd)
	if network == Stream {
		c.br = bufio.NewReaderSize(nc, 64<<10)
	}
	return c, nil
}

// Network reports the socket type under the Conn.
func (c *Conn) Network() Network { return c.network }

// SetMaxFrame sets the largest frame the Conn will send or accept. It is
// meant to be called before the Conn is used, or between messages by the
// goroutine that receives (an authentication step raising a small
// pre-authentication limit, for example).
func (c *Conn) SetMaxFrame(n int) {
	c.rmu.Lock()
	c.wmu.Lock()
	c.maxFrame = n
	c.wmu.Unlock()
	c.rmu.Unlock()
}

// MaxFrame returns the largest frame the Conn sends or accepts.
func (c *Conn) MaxFrame() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.maxFrame
}

// SetFrameTimeout sets how long a receive waits for the rest of a frame
// once its first bytes have arrived (DefaultFrameTimeout unless set; zero
// or less means no limit). A peer that stops inside a frame for longer
// makes the receive fail with a *FrameError matching ErrFrameIdle, and the
// Conn is then broken for receiving. Waiting between frames has no limit
// of its own: bound it with RecvContext. On a SOCK_SEQPACKET socket a
// frame arrives whole, so the timeout never applies.
func (c *Conn) SetFrameTimeout(d time.Duration) {
	c.rmu.Lock()
	c.frameTimeout = d
	c.rmu.Unlock()
}

// Send writes v as a frame of its own, after any values already buffered
// (which go in the same frame).
func (c *Conn) Send(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.send(v)
}

func (c *Conn) send(v any) error {
	if err := c.buffer(v); err != nil {
		return err
	}
	return c.flush()
}

// Buffer adds v to the frame being built without writing it, so that many
// small values cost one write. The frame is written by Flush or Send, or on
// its own once it reaches 64 KiB.
func (c *Conn) Buffer(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.buffer(v); err != nil {
		return err
	}
	if len(c.wbuf.b)-headerLen >= batchLimit {
		return c.flush()
	}
	return nil
}

// Flush writes the values buffered so far as one frame.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flush()
}

func (c *Conn) buffer(v any) error {
	if c.werr != nil {
		return c.werr
	}
	mark := len(c.wbuf.b)
	if err := c.enc.Encode(v); err != nil {
		c.wbuf.b = c.wbuf.b[:mark]
		return fmt.Errorf("encode message: %w", err)
	}
	if size := len(c.wbuf.b) - headerLen; size > c.maxFrame {
		c.wbuf.b = c.wbuf.b[:mark]
		return &FrameError{Size: size, Max: c.maxFrame, Err: ErrFrameTooLarge}
	}
	c.pending++
	return nil
}

func (c *Conn) flush() error {
	if c.werr != nil {
		return c.werr
	}
	if c.pending == 0 {
		return nil
	}
	frame := c.wbuf.b
	if c.network == Stream {
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-headerLen))
	} else {
		frame = frame[headerLen:]
	}
	n, err := c.nc.Write(frame)
	c.wbuf.b = c.wbuf.b[:headerLen]
	c.pending = 0
	if err != nil {
		err = fmt.Errorf("write frame: %w", err)
		if n > 0 && c.network == Stream {
			// The peer has part of a frame: whatever is sent next
			// would be read as the rest of it.
			c.werr = fmt.Errorf("write frame: stream out of step after a frame cut short at %d of %d bytes: %w", n, len(frame), err)
		}
		return err
	}
	return nil
}

// Recv reads the next value into v, which must be a pointer. It returns
// io.EOF when the peer closed the connection (or its write side) at a frame
// boundary, and a *FrameError for a frame that breaks the rules.
func (c *Conn) Recv(v any) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.recv(v)
}

func (c *Conn) recv(v any) error {
	if c.rd.Len() == 0 {
		if err := c.readFrame(); err != nil {
			return err
		}
	}
	if err := c.decode(v); err != nil {
		c.rd.Reset(nil) // the rest of this frame cannot be trusted
		return fmt.Errorf("decode message: %w", err)
	}
	return nil
}

// decode decodes the next value of the current frame into v; a panic of
// the decoder is an error (see recoverDecode).
func (c *Conn) decode(v any) (err error) {
	defer recoverDecode(&err)
	return c.dec.Decode(v)
}

// RecvFrame reads the next whole frame and returns its bytes: one or more
// msgpack values. The slice is valid until the next receive. Values of the
// current frame not yet received with Recv are dropped.
func (c *Conn) RecvFrame() ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.recvFrame()
}

func (c *Conn) recvFrame() ([]byte, error) {
	if err := c.readFrame(); err != nil {
		return nil, err
	}
	b := c.rbuf[:c.rd.Len()]
	c.rd.Reset(nil)
	return b, nil
}

// recvFrameContext is RecvFrame bounded by ctx, like RecvContext.
func (c *Conn) recvFrameContext(ctx context.Context) ([]byte, error) {
	if err := c.rmu.lockContext(ctx); err != nil {
		return nil, err
	}
	defer c.rmu.Unlock()
	var frame []byte
	err := c.rdl.bound(ctx, func() error {
		var err error
		frame, err = c.recvFrame()
		return err
	})
	return frame, err
}

func (c *Conn) readFrame() error {
	c.rd.Reset(nil)
	if c.rerr != nil {
		return c.rerr
	}
	var n int
	var err error
	if c.network == Stream {
		n, err = c.readStreamFrame()
	} else {
		n, err = c.readPacketFrame()
	}
	if err != nil {
		return err
	}
	if err := validate(c.rbuf[:n]); err != nil {
		return &FrameError{Size: n, Max: c.maxFrame, Err: err}
	}
	c.rd.Reset(c.rbuf[:n])
	c.dec.ResetReader(&c.rd)
	return nil
}

func (c *Conn) grow(n int) {
	if cap(c.rbuf) < n {
		c.rbuf = make([]byte, n, max(n, min(2*cap(c.rbuf), c.maxFrame)))
	}
}

// readStreamFrame reads the next frame into rbuf and returns its length,
// going on with the frame a previous call left partly read. An error
// that a later call can get past (a deadline, a cancelled context) keeps
// what was read; one that leaves the stream out of step breaks it.
func (c *Conn) readStreamFrame() (int, error) {
	if c.armed {
		// A frame a previous receive left partly read. The frame's
		// clock stopped while the receiver was away (that time is
		// not the peer's idleness): the rest gets what was left of
		// the frame timeout, counted from now.
		if c.frameTimeout > 0 {
			c.rdl.setFrame(time.Now().Add(c.frameLeft))
		} else { // SetFrameTimeout turned it off meanwhile
			c.armed = false
			c.rdl.setFrame(time.Time{})
		}
	}
	for c.got < headerLen+c.size {
		var p []byte
		if c.got < headerLen {
			p = c.hdr[c.got:] // a field, not a local: a local would escape to the heap
		} else {
			p = c.rbuf[c.got-headerLen : c.size]
		}
		n, err := c.br.Read(p)
		c.got += n
		if n > 0 && c.got == headerLen {
			size := binary.BigEndian.Uint32(c.hdr[:])
			if int64(size) > int64(c.maxFrame) {
				return 0, c.breakStream(&FrameError{Size: int(size), Max: c.maxFrame, Err: ErrFrameTooLarge})
			}
			if size == 0 {
				c.endFrame() // the stream is still in step
				return 0, &FrameError{Max: c.maxFrame, Err: errEmptyFrame}
			}
			c.size = int(size)
			c.grow(c.size)
		}
		if err != nil {
			if err == io.EOF {
				if c.got == 0 {
					return 0, io.EOF // at a boundary
				}
				return 0, c.breakStream(&FrameError{Size: max(c.got-headerLen, 0), Max: c.maxFrame, Err: io.ErrUnexpectedEOF})
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && c.armed && c.rdl.frameExpired() {
				return 0, c.breakStream(&FrameError{Size: c.size, Max: c.maxFrame,
					Err: fmt.Errorf("%w for %v after %d bytes", ErrFrameIdle, c.frameTimeout, max(c.got-headerLen, 0))})
			}
			if c.armed {
				c.frameLeft = c.rdl.frameLeft()
			}
			return 0, err
		}
		if c.got > 0 && !c.armed && c.frameTimeout > 0 && c.got < headerLen+c.size {
			// The frame is under way and not all here: from now on
			// the rest has frameTimeout to arrive.
			c.armed = true
			c.rdl.setFrame(time.Now().Add(c.frameTimeout))
		}
	}
	n := c.size
	c.endFrame()
	return n, nil
}

// endFrame readies the stream for the next frame.
func (c *Conn) endFrame() {
	c.got, c.size = 0, 0
	if c.armed {
		c.armed = false
		c.rdl.setFrame(time.Time{})
	}
}

// breakStream records err as the answer to every later receive: the
// stream is out of step.
func (c *Conn) breakStream(err error) error {
	c.endFrame()
	c.rerr = err
	return err
}

// readPacketFrame reads one datagram. It first peeks with MSG_TRUNC, which
// makes the kernel report the datagram's real length without consuming it,
// so the buffer can be sized (up to the maximum) before the real read.
func (c *Conn) readPacketFrame() (int, error) {
	var peek [1]byte
	size, err := c.recvRaw(peek[:], unix.MSG_PEEK|unix.MSG_TRUNC)
	if err != nil {
		return 0, err
	}
	if size == 0 {
		// An empty datagram or the peer's close: both read as 0 bytes.
		empty, err := c.emptyDatagram()
		if err != nil {
			return 0, err
		}
		if !empty {
			return 0, io.EOF
		}
		if _, err := c.recvRaw(peek[:], 0); err != nil { // consume it
			return 0, err
		}
		return 0, &FrameError{Max: c.maxFrame, Err: errEmptyFrame}
	}
	if size > c.maxFrame {
		c.recvRaw(peek[:], 0) // drop it
		return 0, &FrameError{Size: size, Max: c.maxFrame, Err: ErrFrameTooLarge}
	}
	c.grow(size)
	n, err := c.recvRaw(c.rbuf[:size], 0)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// emptyDatagram tells, after a read of 0 bytes on a SOCK_SEQPACKET
// socket, an empty datagram at the head of the queue from the peer's
// close. While the peer has not shut down, 0 bytes can only be a
// datagram. Once it has, an empty datagram matters only if data follows
// it (SIOCINQ counts the bytes of every queued datagram); if nothing does,
// reporting the close loses nothing.
func (c *Conn) emptyDatagram() (bool, error) {
	var empty bool
	var serr error
	err := c.raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if _, err := unix.Poll(fds, 0); err != nil {
			serr = os.NewSyscallError("poll", err)
			return
		}
		if fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP) == 0 {
			empty = true
			return
		}
		queued, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			serr = os.NewSyscallError("ioctl SIOCINQ", err)
			return
		}
		empty = queued > 0
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return false, fmt.Errorf("read frame: %w", err)
	}
	return empty, nil
}

func (c *Conn) recvRaw(b []byte, flags int) (int, error) {
	var n int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), b, flags)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, fmt.Errorf("read frame: %w", os.NewSyscallError("recvfrom", err))
	}
	return n, nil
}

// RecvContext is Recv bounded by ctx: it returns ctx's error (its cause)
// if ctx ends before a value arrives, including while another receive
// holds the Conn. Part of a frame read before ctx ended is kept for the
// next receive.
func (c *Conn) RecvContext(ctx context.Context, v any) error {
	if err := c.rmu.lockContext(ctx); err != nil {
		return err
	}
	defer c.rmu.Unlock()
	return c.rdl.bound(ctx, func() error { return c.recv(v) })
}

// SendContext is Send bounded by ctx: it returns ctx's error (its cause)
// if ctx ends before the frame is written, including while another send
// holds the Conn; the deadline it sets never touches another's send. A
// send cut off in the middle of its frame breaks the Conn for sending.
func (c *Conn) SendContext(ctx context.Context, v any) error {
	if err := c.wmu.lockContext(ctx); err != nil {
		return err
	}
	defer c.wmu.Unlock()
	return c.wdl.bound(ctx, func() error { return c.send(v) })
}

// SetDeadline sets the read and write deadlines of the socket, as
// net.Conn does; a zero t clears them. They bound every send and receive
// (RecvContext and SendContext too) until changed.
func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.rdl.setUser(t), c.wdl.setUser(t))
}

// CloseWrite shuts down the sending side: the peer's Recv returns io.EOF
// once it has read what was sent. Buffered values are flushed first.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.flush(); err != nil {
		return err
	}
	return c.nc.CloseWrite()
}

// Close closes the socket; values still buffered are not sent.
func (c *Conn) Close() error { return c.nc.Close() }

// UnixConn returns the socket under the Conn, for its address and peer
// credentials.
func (c *Conn) UnixConn() *net.UnixConn { return c.nc }
