package rpclab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"ipcplay/ipc"
)

// A DemoMethod is one method of DemoServer: its name, the arguments it
// takes, and what it does.
type DemoMethod struct {
	Name string
	Args string // as in a usage line: "N..."
	Want string // what the server decodes the arguments into
	Does string
}

// DemoMethods are the methods DemoServer offers.
var DemoMethods = []DemoMethod{
	{"add", "N...", "a list of integers", "the sum of the integers"},
	{"sub", "A B", "two integers", "A minus B"},
	{"div", "A B", "two integers", "A divided by B, rounded toward zero (B = 0 is a remote error)"},
	{"echo", "ARGS...", "any list of values", "the arguments, back as they arrived"},
}

// demoMethod returns the DemoMethod called name.
func demoMethod(name string) (DemoMethod, bool) {
	for _, m := range DemoMethods {
		if m.Name == name {
			return m, true
		}
	}
	return DemoMethod{}, false
}

// A BadArgsError is a demo method's refusal of its arguments, said in
// terms of what the method takes rather than in the decoder's words. It
// wraps the *ipc.RemoteError.
type BadArgsError struct {
	Method DemoMethod
	Args   []any
	Err    *ipc.RemoteError
}

func (e *BadArgsError) Error() string {
	got, err := json.Marshal(e.Args)
	if err != nil {
		got = []byte(fmt.Sprint(e.Args))
	}
	return fmt.Sprintf("remote %s: the server expected %s (%s %s), got %s",
		e.Method.Name, e.Method.Want, e.Method.Name, e.Method.Args, got)
}

func (e *BadArgsError) Unwrap() error { return e.Err }

var errOverflow = errors.New("integer overflow")

func add(_ context.Context, xs []int64) (int64, error) {
	var sum int64
	for _, x := range xs {
		if (x > 0 && sum > math.MaxInt64-x) || (x < 0 && sum < math.MinInt64-x) {
			return 0, errOverflow
		}
		sum += x
	}
	return sum, nil
}

func two(xs []int64) (int64, int64, error) {
	if len(xs) != 2 {
		return 0, 0, fmt.Errorf("want 2 integers, got %d", len(xs))
	}
	return xs[0], xs[1], nil
}

func sub(_ context.Context, xs []int64) (int64, error) {
	a, b, err := two(xs)
	if err != nil {
		return 0, err
	}
	if (b < 0 && a > math.MaxInt64+b) || (b > 0 && a < math.MinInt64+b) {
		return 0, errOverflow
	}
	return a - b, nil
}

func div(_ context.Context, xs []int64) (int64, error) {
	a, b, err := two(xs)
	if err != nil {
		return 0, err
	}
	if b == 0 {
		return 0, errors.New("division by zero")
	}
	if a == math.MinInt64 && b == -1 {
		return 0, errOverflow
	}
	return a / b, nil
}

func echo(_ context.Context, args []any) ([]any, error) { return args, nil }

// DemoServer returns a server offering DemoMethods.
func DemoServer(cfg ipc.ServerConfig) *ipc.Server {
	s := ipc.NewServer(cfg)
	for name, fn := range map[string]any{"add": add, "sub": sub, "div": div, "echo": echo} {
		if err := s.Register(name, fn); err != nil {
			panic(err) // the table above is wrong
		}
	}
	return s
}

// Serve runs DemoServer on a socket at path until ctx is done. ready, if
// not nil, is called once the socket is listening.
func Serve(ctx context.Context, path string, cfg ipc.ServerConfig, ready func()) error {
	if err := CheckSocketPath(path); err != nil {
		return err
	}
	// A server killed with SIGKILL leaves its socket file behind:
	// ListenReplace replaces a stale one and refuses when a live server
	// answers on it.
	ln, err := ipc.ListenReplace(ipc.Stream, path)
	if err != nil {
		return err
	}
	if ready != nil {
		ready()
	}
	return DemoServer(cfg).Serve(ctx, ln)
}

// ParseArgs turns command-line words into a method's argument list: each
// word that is a JSON value (a number, true, false, null, a quoted string, an
// array or an object) is that value, with integers as int64; any other word
// is a string.
func ParseArgs(words []string) []any {
	args := make([]any, 0, len(words))
	for _, w := range words {
		args = append(args, parseWord(w))
	}
	return args
}

func parseWord(w string) any {
	if i, err := strconv.ParseInt(w, 10, 64); err == nil {
		return i
	}
	dec := json.NewDecoder(strings.NewReader(w))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return w
	}
	return fixNumbers(v)
}

// fixNumbers turns the json.Numbers in v into int64 or float64.
func fixNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = fixNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = fixNumbers(v[k])
		}
	}
	return v
}

// Call dials the server at path, calls method with args and returns the
// result decoded as a generic value. A failure on the server is an
// *ipc.RemoteError; arguments a demo method refused are a *BadArgsError
// wrapping it.
func Call(ctx context.Context, path string, key []byte, method string, args []any) (any, error) {
	if err := CheckSocketPath(path); err != nil {
		return nil, err
	}
	cl, err := ipc.DialClient(ctx, path, key, 0)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var result any
	if err := cl.Call(ctx, method, args, &result); err != nil {
		var re *ipc.RemoteError
		if m, ok := demoMethod(method); ok && errors.As(err, &re) && re.Code == ipc.CodeBadArgs {
			return nil, &BadArgsError{Method: m, Args: args, Err: re}
		}
		return nil, err
	}
	return result, nil
}
