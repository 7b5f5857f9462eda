package benchlab

import (
	"errors"
	"fmt"
	"time"
)

// An End is one side of a mechanism: it sends and receives whole
// messages. Recv fills b with exactly one message of len(b) bytes (a
// datagram of another length is an error). A notification-only mechanism
// carries only b[0], as an 8-byte token.
type End interface {
	Send(b []byte) error
	Recv(b []byte) error
	Close() error
}

// The operation a message asks of the echo end, in its first byte.
const (
	opEcho    = 1 // send the message back
	opSink    = 2 // keep it: a one-way message
	opSinkAck = 3 // keep it, then send a one-byte acknowledgement
	opQuit    = 4 // stop serving
)

// errBadOp reports a message whose first byte is no operation: the two
// ends disagree on the framing.
var errBadOp = errors.New("message with no known operation (framing lost)")

// serve is the echo end of every cell, in a child process or a goroutine:
// it answers messages of size bytes until told to quit. With yield set (the
// process ends), it passes through the Go scheduler every yieldEvery,
// reading the clock every eighth message to know when.
func serve(e End, size int, yield bool) error {
	buf := make([]byte, size)
	ack := []byte{opSinkAck}
	var y yielder
	for n := 0; ; n++ {
		if yield && n&7 == 0 {
			y.at(time.Now())
		}
		if err := e.Recv(buf); err != nil {
			return fmt.Errorf("echo: receive: %w", err)
		}
		var err error
		switch buf[0] {
		case opEcho:
			err = e.Send(buf)
		case opSink:
		case opSinkAck:
			err = e.Send(ack)
		case opQuit:
			return nil
		default:
			return fmt.Errorf("echo: op %d: %w", buf[0], errBadOp)
		}
		if err != nil {
			return fmt.Errorf("echo: send: %w", err)
		}
	}
}

// window is the number of one-way messages sent between two
// acknowledgements in the throughput phase: 64 KiB of messages, at least
// one and at most 64. It keeps UDP inside its receive buffer (a lost
// datagram would stall the batch) and the goroutine mechanisms' buffers
// small.
func window(size int) int { return min(max(64<<10/size, 1), 64) }
