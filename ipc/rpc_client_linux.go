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
type Client struct {
	c      *Conn
	mu     sync.Mutex
	nextID uint64
	calls  map[uint64]*pendingCall
	err    error         // why the client stopped, once it has
	done   chan struct{} // closed when the reader goroutine returns
}

type pendingCall struct {
	result any
	err    error
	done   chan struct{} // one value, sent when err and result are set
}

// NewClient returns a Client on c, which must already be authenticated
// (see DialAuth). The Client owns c and a goroutine that reads responses;
// Close releases both.
func NewClient(c *Conn) *Client {
	cl := &Client{c: c, calls: make(map[uint64]*pendingCall), done: make(chan struct{})}
	go cl.read()
	return cl
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
// call abandoned that way may still run on the server. The request itself
// is written without a deadline: that blocks only while the server is not
// reading, which it does only while it runs its limit of calls for this
// connection.
func (cl *Client) Call(ctx context.Context, method string, args, result any) error {
	call := &pendingCall{result: result, done: make(chan struct{}, 1)}
	cl.mu.Lock()
	if cl.err != nil {
		err := cl.err
		cl.mu.Unlock()
		return fmt.Errorf("call %s: %w", method, err)
	}
	cl.nextID++
	id := cl.nextID
	cl.calls[id] = call
	cl.mu.Unlock()

	if err := cl.c.Send(&callRequest{id: id, method: method, args: args}); err != nil {
		cl.forget(id)
		return fmt.Errorf("call %s: %w", method, err)
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		if cl.forget(id) {
			return fmt.Errorf("call %s: %w", method, context.Cause(ctx))
		}
		<-call.done // the reader has it and is about to finish it
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

// forget removes a call the caller stops waiting for, and reports whether
// it was still there (and so will never be finished by the reader).
func (cl *Client) forget(id uint64) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	_, ok := cl.calls[id]
	delete(cl.calls, id)
	return ok
}

// read is the Client's one reader: it hands every response to its call.
func (cl *Client) read() {
	defer close(cl.done)
	for {
		frame, err := cl.c.RecvFrame()
		if err != nil {
			cl.stop(err)
			return
		}
		for len(frame) > 0 {
			resp, rest, err := parseResponse(frame)
			if err != nil {
				cl.stop(err)
				cl.c.Close()
				return
			}
			frame = rest
			cl.mu.Lock()
			call := cl.calls[resp.ID]
			delete(cl.calls, resp.ID)
			cl.mu.Unlock()
			if call == nil {
				continue // abandoned by its caller
			}
			cl.finish(call, &resp)
		}
	}
}

func (cl *Client) finish(call *pendingCall, resp *parsedResponse) {
	switch {
	case resp.Code != "":
		call.err = &RemoteError{Code: resp.Code, Message: resp.Message}
	case call.result != nil:
		if err := decodeResult(resp.Result, call.result); err != nil {
			call.err = fmt.Errorf("decode result: %w", err)
		}
	}
	call.done <- struct{}{}
}

func decodeResult(b []byte, v any) error {
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(b))
	return dec.Decode(v)
}

// stop fails every waiting call with err (ErrClientClosed if the client
// was closed).
func (cl *Client) stop(err error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.err == nil {
		if errors.Is(err, net.ErrClosed) {
			err = ErrClientClosed
		}
		cl.err = err
	}
	for id, call := range cl.calls {
		delete(cl.calls, id)
		call.err = cl.err
		call.done <- struct{}{}
	}
}

// Close closes the connection, fails the calls still waiting with
// ErrClientClosed, and waits for the reader goroutine.
func (cl *Client) Close() error {
	cl.mu.Lock()
	if cl.err == nil {
		cl.err = ErrClientClosed
	}
	cl.mu.Unlock()
	err := cl.c.Close()
	<-cl.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
