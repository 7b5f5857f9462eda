package ipc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// The RPC messages, sent on an authenticated Conn. Each is a msgpack array,
// and a frame may hold several:
//
//	request   [id uint, method string, args any]
//	response  [id uint, code string, message string, result any]
//
// code is "" for success; otherwise the call failed and result is nil.
// Request ids are chosen by the client and echoed back, so responses may
// come in any order.

// The codes of a failed call, in RemoteError.Code.
const (
	CodeError         = "error"          // the function returned an error
	CodeUnknownMethod = "unknown-method" // no function registered under that name
	CodeBadArgs       = "bad-args"       // the arguments did not decode into the function's argument type
	CodePanic         = "panic"          // the function panicked; the server recovered
	CodeBadResult     = "bad-result"     // the result did not encode
)

// RemoteError is a call that failed on the server: the function returned
// an error (Code "error"), or the server could not run it (the other
// codes). Message is the remote error's text.
type RemoteError struct {
	Method  string
	Code    string
	Message string
}

func (e *RemoteError) Error() string {
	if e.Code == CodeError {
		return fmt.Sprintf("remote %s: %s", e.Method, e.Message)
	}
	return fmt.Sprintf("remote %s: %s: %s", e.Method, e.Code, e.Message)
}

// ErrBadRequest is matched by the error parseRequest returns for a
// message that is not a well-formed request.
var ErrBadRequest = errors.New("malformed request")

// request is a parsed request. Args aliases the frame it came from.
type request struct {
	ID     uint64
	Method string
	Args   []byte
}

// parseRequest reads the first request in b and returns it and the bytes
// after it. b must have passed the frame validation of Conn, which bounds
// what decoding allocates.
func parseRequest(b []byte) (request, []byte, error) {
	var req request
	rd := bytes.NewReader(b)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(rd) // bytes.Reader is an io.ByteScanner: no read-ahead
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return req, nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if n != 3 {
		return req, nil, fmt.Errorf("%w: array of %d elements, want 3", ErrBadRequest, n)
	}
	if req.ID, err = dec.DecodeUint64(); err != nil {
		return req, nil, fmt.Errorf("%w: id: %w", ErrBadRequest, err)
	}
	if req.Method, err = dec.DecodeString(); err != nil {
		return req, nil, fmt.Errorf("%w: method: %w", ErrBadRequest, err)
	}
	start := len(b) - rd.Len()
	if err := dec.Skip(); err != nil {
		return req, nil, fmt.Errorf("%w: args: %w", ErrBadRequest, err)
	}
	end := len(b) - rd.Len()
	req.Args = b[start:end:end]
	return req, b[end:], nil
}

// callRequest encodes a request straight into the frame being built.
type callRequest struct {
	id     uint64
	method string
	args   any
}

func (r *callRequest) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(3); err != nil {
		return err
	}
	if err := enc.EncodeUint(r.id); err != nil {
		return err
	}
	if err := enc.EncodeString(r.method); err != nil {
		return err
	}
	return enc.Encode(r.args)
}

// response encodes a response straight into the frame being built.
type response struct {
	id      uint64
	code    string
	message string
	result  any
}

func (r *response) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(4); err != nil {
		return err
	}
	if err := enc.EncodeUint(r.id); err != nil {
		return err
	}
	if err := enc.EncodeString(r.code); err != nil {
		return err
	}
	if err := enc.EncodeString(r.message); err != nil {
		return err
	}
	if r.code != "" {
		return enc.EncodeNil()
	}
	return enc.Encode(r.result)
}

// parsedResponse is a response whose result is still encoded; Result
// aliases the frame it came from.
type parsedResponse struct {
	ID      uint64
	Code    string
	Message string
	Result  []byte
}

func parseResponse(b []byte) (parsedResponse, []byte, error) {
	var resp parsedResponse
	rd := bytes.NewReader(b)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(rd)
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return resp, nil, fmt.Errorf("malformed response: %w", err)
	}
	if n != 4 {
		return resp, nil, fmt.Errorf("malformed response: array of %d elements, want 4", n)
	}
	if resp.ID, err = dec.DecodeUint64(); err != nil {
		return resp, nil, fmt.Errorf("malformed response: id: %w", err)
	}
	if resp.Code, err = dec.DecodeString(); err != nil {
		return resp, nil, fmt.Errorf("malformed response: code: %w", err)
	}
	if resp.Message, err = dec.DecodeString(); err != nil {
		return resp, nil, fmt.Errorf("malformed response: message: %w", err)
	}
	start := len(b) - rd.Len()
	if err := dec.Skip(); err != nil {
		return resp, nil, fmt.Errorf("malformed response: result: %w", err)
	}
	end := len(b) - rd.Len()
	resp.Result = b[start:end:end]
	return resp, b[end:], nil
}

// decodeStrict decodes b, which holds one msgpack value, into v,
// refusing unknown struct fields and trailing bytes.
func decodeStrict(b []byte, v any) (err error) {
	defer recoverDecode(&err)
	rd := bytes.NewReader(b)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(rd)
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if rd.Len() != 0 {
		return fmt.Errorf("%d bytes after the value", rd.Len())
	}
	return nil
}

// recoverDecode turns a panic of msgpack's decoder into an error in *err.
// The decoder panics on input it cannot store, such as an array used as a
// key of a map with interface keys (Go cannot hash it); the input comes
// from another process, so that must not kill this one. Deferred by every
// decode of a peer's value into a type the caller chose.
func recoverDecode(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("msgpack decoder panicked: %v", p)
	}
}
