package ipc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// ErrClientClosed is the error of a call made on, or cut short by, a
// Client that was closed.
var ErrClientClosed = errors.New("rpc client closed")

// A Client calls functions on a Server over one authenticated Conn. It is
// safe for concurrent use: calls from many goroutines share the
// connection, each waiting for its own response.
//
// One waiting caller at a time is the reader: it reads responses and hands
// each to its caller until its own arrives, then passes the role to
// another waiting caller. A lone caller thus reads its own response, with
// no hand-off between goroutines (which costs a thread wake-up, a good
// part of a round trip between processes). When calls are outstanding but
// none of their callers is waiting yet (all are still sending, perhaps
// blocked because the server is busy), a helper goroutine owned by the
// Client reads instead, so responses never pile up unread.
type Client struct {
	c       *Conn
	mu      sync.Mutex
	nextID  uint64
	calls   map[uint64]*pendingCall
	reading bool  // a caller or a helper is the reader
	err     error // why the client stopped, once it has
	helpers sync.WaitGroup
}

type pendingCall struct {
	result   any
	err      error
	finished bool          // err and result are set (under Client.mu)
	waiting  bool          // its caller waits for it (under Client.mu)
	wake     chan struct{} // one token: finished, or a turn to read
}

// NewClient returns a Client on c, which must already be authenticated
// (see DialAuth). The Client owns c; Close releases it.
func NewClient(c *Conn) *Client {
	return &Client{c: c, calls: make(map[uint64]*pendingCall)}
}

// DialClient connects to the RPC server at path, authenticates with key
// and returns a Client. timeout bounds the handshake (zero means
// DefaultHandshakeTimeout).
func DialClient(ctx context.Context, path string, key []byte, timeout time.Duration) (*Client, error) {
	c, err := DialAuth(ctx, path, key, timeout)
	if err != nil {
		return nil, err
	}
	c.SetMaxFrame(DefaultRPCMaxFrame)
	return NewClient(c), nil
}

// Call calls method with args and decodes its result into result, a
// pointer (or nil to drop the result). A call the server answered with an
// error returns a *RemoteError. ctx bounds the wait for the response; a
// call abandoned that way may still run on the server; ctx may end even
// while its response is half read (the client reads the rest for the
// next call). The request itself is written without a deadline: that
// blocks only while the server is not reading, which it does only while it
// runs its limit of calls for this connection. A server that stops in the
// middle of a response for longer than the Conn's frame timeout
// (DefaultFrameTimeout unless set with Conn.SetFrameTimeout before
// NewClient) breaks the Client: every call then fails with an error
// matching ErrFrameIdle.
func (cl *Client) Call(ctx context.Context, method string, args, result any) error {
	call := &pendingCall{result: result, wake: make(chan struct{}, 1)}
	cl.mu.Lock()
	if cl.err != nil {
		err := cl.err
		cl.mu.Unlock()
		return fmt.Errorf("call %s: %w", method, err)
	}
	cl.nextID++
	id := cl.nextID
	cl.calls[id] = call
	if !cl.reading && len(cl.calls) > 1 && cl.someWaiting(nil) == nil {
		// Others are outstanding and all still sending: nobody would
		// read their responses while this call sends too.
		cl.startHelper()
	}
	cl.mu.Unlock()

	if err := cl.c.Send(&callRequest{id: id, method: method, args: args}); err != nil {
		cl.mu.Lock()
		delete(cl.calls, id)
		cl.mu.Unlock()
		return fmt.Errorf("call %s: %w", method, err)
	}
	if err := cl.await(ctx, id, call); err != nil {
		return fmt.Errorf("call %s: %w", method, err)
	}
	if call.err != nil {
		var re *RemoteError
		if errors.As(call.err, &re) {
			re.Method = method
			return re
		}
		return fmt.Errorf("call %s: %w", method, call.err)
	}
	return nil
}

// await waits until call is finished, reading responses itself whenever no
// other caller is. It returns ctx's cause if ctx ends first and the call
// could be abandoned.
func (cl *Client) await(ctx context.Context, id uint64, call *pendingCall) error {
	for {
		cl.mu.Lock()
		call.waiting = true
		if call.finished {
			cl.mu.Unlock()
			return nil
		}
		if !cl.reading {
			cl.reading = true
			cl.mu.Unlock()
			if err := cl.lead(ctx, call); err != nil {
				if cl.abandon(id) {
					return err
				}
				// It was finished meanwhile (by Close, say).
				ctx = context.Background()
			}
			continue
		}
		cl.mu.Unlock()
		select {
		case <-call.wake:
		case <-ctx.Done():
			if cl.abandon(id) {
				return context.Cause(ctx)
			}
			ctx = context.Background() // finished or about to be
		}
	}
}

// abandon removes a call its caller stops waiting for, and reports whether
// it was still waiting (and so will never be finished by a reader). If
// the caller had just been woken to take the reader's role, the role goes
// to someone else.
func (cl *Client) abandon(id uint64) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	_, ok := cl.calls[id]
	delete(cl.calls, id)
	if !cl.reading {
		cl.handOver(nil)
	}
	return ok
}

// lead is the reader's loop, run by the caller of me or, with me nil, by a
// helper. It reads responses until me is finished (a helper: until no call
// is outstanding, or a caller waits and can take over), the connection
// fails, or ctx ends. Then it hands the reader's role over. ctx may end in
// the middle of a response: the Conn keeps the part read, and the next
// reader goes on from there.
func (cl *Client) lead(ctx context.Context, me *pendingCall) error {
	for {
		frame, err := cl.c.recvFrameContext(ctx)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Cause(ctx)) {
				cl.mu.Lock()
				cl.handOver(me)
				cl.mu.Unlock()
				return err
			}
			cl.stop(err)
			return nil
		}
		for len(frame) > 0 {
			resp, rest, err := parseResponse(frame)
			if err != nil {
				cl.stop(err)
				cl.c.Close()
				return nil
			}
			frame = rest
			cl.mu.Lock()
			call := cl.calls[resp.ID]
			delete(cl.calls, resp.ID)
			cl.mu.Unlock()
			if call != nil {
				cl.finish(call, &resp)
			}
		}
		cl.mu.Lock()
		if (me != nil && me.finished) || (me == nil && (len(cl.calls) == 0 || cl.someWaiting(nil) != nil)) {
			cl.handOver(me)
			cl.mu.Unlock()
			return nil
		}
		cl.mu.Unlock()
	}
}

// handOver ends me's turn as the reader (me is nil for a helper): it wakes
// a waiting caller to take the role, or starts a helper if calls are
// outstanding but nobody waits for them yet. Called with cl.mu held.
func (cl *Client) handOver(me *pendingCall) {
	cl.reading = false
	if cl.err != nil {
		return
	}
	if w := cl.someWaiting(me); w != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
		return
	}
	for _, call := range cl.calls {
		if call != me {
			cl.startHelper()
			return
		}
	}
}

// someWaiting returns an outstanding call other than except whose caller
// waits for it, or nil. Called with cl.mu held.
func (cl *Client) someWaiting(except *pendingCall) *pendingCall {
	for _, call := range cl.calls {
		if call != except && call.waiting && !call.finished {
			return call
		}
	}
	return nil
}

// startHelper makes a helper goroutine the reader. Called with cl.mu held
// and no reader.
func (cl *Client) startHelper() {
	cl.reading = true
	cl.helpers.Go(func() { cl.lead(context.Background(), nil) })
}

func (cl *Client) finish(call *pendingCall, resp *parsedResponse) {
	var err error
	switch {
	case resp.Code != "":
		err = &RemoteError{Code: resp.Code, Message: resp.Message}
	case call.result != nil:
		if derr := decodeResult(resp.Result, call.result); derr != nil {
			err = fmt.Errorf("decode result: %w", derr)
		}
	}
	cl.mu.Lock()
	call.err = err
	call.finished = true
	cl.mu.Unlock()
	select {
	case call.wake <- struct{}{}:
	default:
	}
}

func decodeResult(b []byte, v any) (err error) {
	defer recoverDecode(&err)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(b))
	return dec.Decode(v)
}

// stop fails every waiting call with err (ErrClientClosed if the client
// was closed).
func (cl *Client) stop(err error) {
	cl.mu.Lock()
	if cl.err == nil {
		if errors.Is(err, net.ErrClosed) {
			err = ErrClientClosed
		}
		cl.err = err
	}
	var calls []*pendingCall
	for id, call := range cl.calls {
		delete(cl.calls, id)
		call.err = cl.err
		call.finished = true
		calls = append(calls, call)
	}
	cl.reading = false
	cl.mu.Unlock()
	for _, call := range calls {
		select {
		case call.wake <- struct{}{}:
		default:
		}
	}
}

// Close closes the connection, fails the calls still waiting with
// ErrClientClosed, and waits for the helper reader if one is running.
func (cl *Client) Close() error {
	cl.mu.Lock()
	if cl.err == nil {
		cl.err = ErrClientClosed
	}
	cl.mu.Unlock()
	err := cl.c.Close()
	cl.stop(ErrClientClosed)
	cl.helpers.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
