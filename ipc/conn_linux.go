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
	"sync"
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

// batchLimit is the frame size at which Buffer writes the frame out on its
// own, so a long batch does not build one huge frame.
const batchLimit = 64 << 10

const headerLen = 4

// ErrFrameTooLarge is matched (with errors.Is) by every *FrameError about a
// frame over the maximum size.
var ErrFrameTooLarge = errors.New("frame too large")

// FrameError reports a frame that breaks the framing rules: longer than the
// maximum, empty, or cut short.
type FrameError struct {
	Size int   // the frame's length, as announced or as far as it got
	Max  int   // the maximum in force
	Err  error // ErrFrameTooLarge, io.ErrUnexpectedEOF, or another cause
}

func (e *FrameError) Error() string {
	switch {
	case errors.Is(e.Err, ErrFrameTooLarge):
		return fmt.Sprintf("frame of %d bytes is over the %d-byte maximum", e.Size, e.Max)
	case errors.Is(e.Err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("truncated frame: connection closed inside a frame of %d bytes", e.Size)
	}
	return fmt.Sprintf("bad frame of %d bytes: %v", e.Size, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// A Conn is a framed msgpack connection over a Unix socket. One goroutine
// may send while another receives; sends are serialized with each other, and
// so are receives.
type Conn struct {
	nc       *net.UnixConn
	raw      syscallConn
	network  Network
	maxFrame int

	wmu     sync.Mutex
	wbuf    frameBuf
	enc     *msgpack.Encoder
	pending int // values in wbuf not yet written

	rmu  sync.Mutex
	hdr  [headerLen]byte
	br   *bufio.Reader // stream only
	rbuf []byte
	rd   bytes.Reader
	dec  *msgpack.Decoder
}

type syscallConn interface {
	Read(func(fd uintptr) bool) error
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
	c := &Conn{nc: nc, raw: raw, network: network, maxFrame: DefaultMaxFrame}
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

// Send writes v as a frame of its own, after any values already buffered
// (which go in the same frame).
func (c *Conn) Send(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
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
	if c.pending == 0 {
		return nil
	}
	frame := c.wbuf.b
	if c.network == Stream {
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-headerLen))
	} else {
		frame = frame[headerLen:]
	}
	_, err := c.nc.Write(frame)
	c.wbuf.b = c.wbuf.b[:headerLen]
	c.pending = 0
	if err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// Recv reads the next value into v, which must be a pointer. It returns
// io.EOF when the peer closed the connection (or its write side) at a frame
// boundary, and a *FrameError for a frame that breaks the rules.
func (c *Conn) Recv(v any) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rd.Len() == 0 {
		if err := c.readFrame(); err != nil {
			return err
		}
	}
	if err := c.dec.Decode(v); err != nil {
		c.rd.Reset(nil) // the rest of this frame cannot be trusted
		return fmt.Errorf("decode message: %w", err)
	}
	return nil
}

// RecvFrame reads the next whole frame and returns its bytes: one or more
// msgpack values. The slice is valid until the next receive. Values of the
// current frame not yet received with Recv are dropped.
func (c *Conn) RecvFrame() ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.readFrame(); err != nil {
		return nil, err
	}
	b := c.rbuf[:c.rd.Len()]
	c.rd.Reset(nil)
	return b, nil
}

func (c *Conn) readFrame() error {
	var n int
	var err error
	if c.network == Stream {
		n, err = c.readStreamFrame()
	} else {
		n, err = c.readPacketFrame()
	}
	if err != nil {
		c.rd.Reset(nil)
		return err
	}
	if err := validate(c.rbuf[:n]); err != nil {
		c.rd.Reset(nil)
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

func (c *Conn) readStreamFrame() (int, error) {
	hdr := c.hdr[:] // a field, not a local: a local would escape to the heap
	if _, err := io.ReadFull(c.br, hdr); err != nil {
		if err == io.ErrUnexpectedEOF {
			return 0, &FrameError{Size: 0, Max: c.maxFrame, Err: err}
		}
		return 0, err // io.EOF at a boundary, or a read error
	}
	size := binary.BigEndian.Uint32(hdr)
	if int64(size) > int64(c.maxFrame) {
		return 0, &FrameError{Size: int(size), Max: c.maxFrame, Err: ErrFrameTooLarge}
	}
	if size == 0 {
		return 0, &FrameError{Max: c.maxFrame, Err: errors.New("empty frame")}
	}
	c.grow(int(size))
	if got, err := io.ReadFull(c.br, c.rbuf[:size]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, &FrameError{Size: got, Max: c.maxFrame, Err: io.ErrUnexpectedEOF}
		}
		return 0, err
	}
	return int(size), nil
}

// readPacketFrame reads one datagram. It first peeks with MSG_TRUNC, which
// makes the kernel report the datagram's real length without consuming it,
// so the buffer can be sized (up to the maximum) before the real read.
func (c *Conn) readPacketFrame() (int, error) {
	var peek [1]byte
	size, err := c.recv(peek[:], unix.MSG_PEEK|unix.MSG_TRUNC)
	if err != nil {
		return 0, err
	}
	if size == 0 {
		return 0, io.EOF // a closed peer; ipc never sends empty datagrams
	}
	if size > c.maxFrame {
		c.recv(peek[:], 0) // drop it
		return 0, &FrameError{Size: size, Max: c.maxFrame, Err: ErrFrameTooLarge}
	}
	c.grow(size)
	n, err := c.recv(c.rbuf[:size], 0)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) recv(b []byte, flags int) (int, error) {
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
// if ctx ends before a value arrives. A frame cut off by the cancellation is
// lost, so a Conn whose receive was cancelled should be closed.
func (c *Conn) RecvContext(ctx context.Context, v any) error {
	return c.withDeadline(ctx, c.nc.SetReadDeadline, func() error { return c.Recv(v) })
}

// SendContext is Send bounded by ctx, like RecvContext.
func (c *Conn) SendContext(ctx context.Context, v any) error {
	return c.withDeadline(ctx, c.nc.SetWriteDeadline, func() error { return c.Send(v) })
}

func (c *Conn) withDeadline(ctx context.Context, set func(time.Time) error, op func() error) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	deadline, _ := ctx.Deadline()
	set(deadline)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0))
		close(fired)
	})
	err := op()
	if !stop() {
		<-fired // else its deadline could land on the next operation
	}
	set(time.Time{})
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if ctx.Err() == nil && !deadline.IsZero() && !time.Now().Before(deadline) {
			<-ctx.Done() // the socket's timer fired a moment before ctx's
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
	return err
}

// SetDeadline sets the read and write deadlines of the socket.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

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
