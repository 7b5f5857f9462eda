package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of ServerConfig.
const (
	DefaultMaxConns    = 256
	DefaultMaxInFlight = 32
	DefaultRPCMaxFrame = 1 << 20
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Auth is how clients are authenticated; Auth.Key is required.
	// Auth.MaxFrame zero means DefaultRPCMaxFrame here.
	Auth AuthConfig

	// MaxConns bounds the connections open at once, authenticated or
	// still in their handshake; the server stops accepting while it is
	// reached. Zero means DefaultMaxConns.
	MaxConns int

	// MaxInFlight bounds the calls running at once for one connection;
	// the server stops reading that connection while it is reached. Zero
	// means DefaultMaxInFlight.
	MaxInFlight int

	// FrameTimeout bounds how long the server waits for the rest of a
	// request frame once it has started to arrive; a client idle that
	// long inside a frame is dropped (see Conn.SetFrameTimeout). Zero
	// means DefaultFrameTimeout, a negative value no limit. Waiting
	// between requests has no limit.
	FrameTimeout time.Duration

	// Logf, if set, is told about every rejected connection and broken
	// request stream.
	Logf func(format string, args ...any)
}

// ServerStats counts what a Server has seen.
type ServerStats struct {
	Accepted      uint64 // connections accepted
	Authenticated uint64 // connections that passed the handshake
	Rejected      uint64 // connections that failed it
	Calls         uint64 // registered functions invoked
	Failed        uint64 // calls answered with a RemoteError of any code
	Dropped       uint64 // authenticated connections closed for a protocol error
}

// A Server runs registered Go functions for authenticated clients. Calls
// on one connection run concurrently (at most MaxInFlight at once), so a
// slow call does not hold up the others, and each runs in a goroutine the
// Server owns: Serve waits for all of them before it returns. A quick call
// runs in the goroutine that read it, so its response goes out without a
// hand-off between goroutines.
type Server struct {
	cfg     ServerConfig
	mu      sync.RWMutex
	methods map[string]*method

	accepted, authenticated, rejected, calls, failed, dropped atomic.Uint64
}

type method struct {
	fn     reflect.Value
	arg    reflect.Type
	result reflect.Type
}

var (
	ctxType = reflect.TypeFor[context.Context]()
	errType = reflect.TypeFor[error]()
)

// NewServer returns a Server with no functions registered.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Auth.MaxFrame <= 0 {
		cfg.Auth.MaxFrame = DefaultRPCMaxFrame
	}
	if cfg.FrameTimeout == 0 {
		cfg.FrameTimeout = DefaultFrameTimeout
	}
	return &Server{cfg: cfg, methods: make(map[string]*method)}
}

// Register makes fn callable under name. fn must have the signature
// func(context.Context, A) (R, error), where A and R are any types msgpack
// can decode into and encode. The context is cancelled when the server
// stops or drops the connection (for a protocol error or a failed write),
// and fn must then return: the server waits for every call before it
// stops. A client that closes its connection normally still gets the
// responses of the calls it made (after a CloseWrite, say), so they run to
// the end.
func (s *Server) Register(name string, fn any) error {
	v := reflect.ValueOf(fn)
	t := v.Type()
	if t.Kind() != reflect.Func || t.NumIn() != 2 || t.NumOut() != 2 || t.IsVariadic() ||
		t.In(0) != ctxType || t.Out(1) != errType {
		return fmt.Errorf("register %q: %s is not func(context.Context, A) (R, error)", name, t)
	}
	if name == "" {
		return fmt.Errorf("register: empty method name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.methods[name]; ok {
		return fmt.Errorf("register %q: already registered", name)
	}
	s.methods[name] = &method{fn: v, arg: t.In(1), result: t.Out(0)}
	return nil
}

// Stats returns the server's counters so far.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Accepted: s.accepted.Load(), Authenticated: s.authenticated.Load(), Rejected: s.rejected.Load(),
		Calls: s.calls.Load(), Failed: s.failed.Load(), Dropped: s.dropped.Load(),
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// Serve accepts connections on ln until ctx is done, then closes ln and
// every connection and waits for all its goroutines. It returns nil after
// a cancellation, and an error if ln is closed otherwise; other accept
// errors (EMFILE, say) are retried after a pause. While MaxConns
// connections are open, including those still in their handshake (which
// lasts at most the handshake timeout), it accepts no more.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	slots := make(chan struct{}, s.cfg.MaxConns)
	backoff := 5 * time.Millisecond
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		uc, err := ln.AcceptUnix()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("serve: accept: %w", err)
			}
			// Out of descriptors or memory, say: wait and retry, as
			// net/http does, rather than stop serving everyone.
			s.logf("rpc: accept: %v; retrying in %v", err, backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.accepted.Add(1)
		wg.Go(func() {
			defer func() { <-slots }()
			c, err := NewConn(uc)
			if err != nil {
				uc.Close()
				s.logf("rpc: %v", err)
				return
			}
			s.ServeConn(ctx, c)
		})
	}
}

// ServeConn authenticates the client on c and answers its requests until
// it closes the connection, breaks the protocol, or ctx is done. It closes
// c and returns once every call it started has returned.
func (s *Server) ServeConn(ctx context.Context, c *Conn) {
	defer c.Close()
	if err := ServerHandshake(ctx, c, s.cfg.Auth); err != nil {
		s.rejected.Add(1)
		s.logf("rpc: rejected a connection: %v", err)
		return
	}
	s.authenticated.Add(1)
	c.SetFrameTimeout(s.cfg.FrameTimeout)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() }) // unblocks RecvFrame
	defer stop()
	cs := &connState{s: s, c: c, ctx: ctx, cancel: cancel,
		slots: make(chan struct{}, s.cfg.MaxInFlight), kick: make(chan struct{}, 1)}
	cs.parked.Store(true)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		cs.watch()
	}()
	cs.wg.Go(cs.read)
	cs.wg.Wait() // every reader and every call
	cancel()
	<-watchDone
}

// connState is one authenticated connection being served.
//
// Exactly one goroutine reads the connection at a time. When it has read a
// request, it runs it itself, so that a quick call's response goes out with
// no hand-off between goroutines on the way: a hand-off wakes a thread,
// which between processes is a good part of a round trip. (So does arming
// a timer per call, which wakes the thread sleeping in the network poller;
// measured, it cost a third of a round trip.) If a call is still running
// after handOffAfter, the connection's watcher starts a new reader (within
// a tick), so a slow call does not hold up the requests behind it. Every
// request but the last of a frame gets a goroutine of its own.
type connState struct {
	s      *Server
	c      *Conn
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{} // one per call running
	wg     sync.WaitGroup

	cur    atomic.Pointer[episode] // the call a reader is running itself
	parked atomic.Bool             // the watcher sleeps until kicked
	kick   chan struct{}
}

// An episode is a reader running a call itself. Whichever of the reader
// (when the call returns) and the watcher (when it has run too long) sets
// taken first decides who reads next.
type episode struct {
	since   time.Time
	taken   atomic.Bool
	started chan struct{} // closed by the watcher once its new reader counts in wg
}

// handOffAfter is how long a reader runs a call itself before a new
// goroutine may take over the reading. The watcher looks every watchTick
// while calls arrive, and sleeps after watchIdleTicks looks without one;
// so a request queued behind a slow call on the same connection waits at
// most about handOffAfter + watchTick. Each tick wakes a thread, which
// costs the quick calls: measured between processes on 2 CPUs, a 1 ms tick
// made a round trip 1.7x the raw one, a 5 ms tick 1.5x.
const (
	handOffAfter   = time.Millisecond
	watchTick      = 5 * time.Millisecond
	watchIdleTicks = 20
)

func (cs *connState) read() {
	for {
		frame, err := cs.c.RecvFrame()
		if err != nil {
			if cs.ctx.Err() == nil && !isClosed(err) {
				cs.drop(err)
			}
			return // on EOF, the calls still running finish and reply
		}
		var last *request
		for len(frame) > 0 {
			req, rest, err := parseRequest(frame)
			if err != nil {
				// The request id may be unknown, so no reply can be
				// addressed: drop the connection.
				cs.drop(err)
				return
			}
			frame = rest
			req.Args = append([]byte(nil), req.Args...) // the frame is reused by the next read
			// The request before this one holds a slot: start it
			// before waiting for a slot for this one, which it may be
			// the one to free.
			if last != nil {
				r := last
				cs.wg.Go(func() { cs.handle(r) })
			}
			select {
			case cs.slots <- struct{}{}:
			case <-cs.ctx.Done():
				return
			}
			last = &req
		}
		if last == nil {
			return // unreachable: Conn never returns an empty frame
		}
		ep := &episode{since: time.Now(), started: make(chan struct{})}
		cs.cur.Store(ep)
		if cs.parked.Load() && cs.parked.CompareAndSwap(true, false) {
			select {
			case cs.kick <- struct{}{}:
			default:
			}
		}
		cs.handle(last)
		cs.cur.CompareAndSwap(ep, nil)
		if !ep.taken.CompareAndSwap(false, true) {
			// The watcher is starting a new reader; this one stays
			// counted in wg until that one is.
			<-ep.started
			return
		}
	}
}

// watch starts a new reader whenever a reader has been running a call
// itself for longer than handOffAfter. It returns when cs.ctx is done.
func (cs *connState) watch() {
	for {
		select {
		case <-cs.kick:
		case <-cs.ctx.Done():
			return
		}
		tick := time.NewTicker(watchTick)
		for idle := 0; ; {
			select {
			case <-tick.C:
			case <-cs.ctx.Done():
				tick.Stop()
				return
			}
			ep := cs.cur.Load()
			if ep == nil {
				if idle++; idle < watchIdleTicks {
					continue
				}
				// Sleep, unless a call started meanwhile: the reader
				// stores cur before it looks at parked, and this
				// looks at cur after it stores parked, so one of
				// them sees the other.
				cs.parked.Store(true)
				if cs.cur.Load() == nil || !cs.parked.CompareAndSwap(true, false) {
					break
				}
			}
			idle = 0
			if ep != nil && time.Since(ep.since) >= handOffAfter && ep.taken.CompareAndSwap(false, true) {
				// The old reader waits for started before it
				// returns, so wg is not at zero here.
				cs.wg.Go(cs.read)
				close(ep.started)
			}
		}
		tick.Stop()
	}
}

func (cs *connState) drop(err error) {
	cs.s.dropped.Add(1)
	cs.s.logf("rpc: closing a connection: %v", err)
	cs.cancel()
}

// handle runs req, replies, and frees its slot.
func (cs *connState) handle(req *request) {
	defer func() { <-cs.slots }()
	s := cs.s
	resp := s.invoke(cs.ctx, req)
	if resp.code != "" {
		s.failed.Add(1)
	}
	err := cs.c.Send(resp)
	if err != nil && resp.code == "" && !isClosed(err) && !errors.Is(err, net.ErrClosed) {
		// The result did not encode (or is over the frame limit):
		// say so instead.
		s.failed.Add(1)
		err = cs.c.Send(&response{id: req.ID, code: CodeBadResult, message: err.Error()})
	}
	if err != nil {
		cs.cancel() // the connection is broken
	}
}

// invoke runs one request and returns its response. A panic in the
// function becomes a CodePanic response.
func (s *Server) invoke(ctx context.Context, req *request) (resp *response) {
	resp = &response{id: req.ID}
	s.mu.RLock()
	m := s.methods[req.Method]
	s.mu.RUnlock()
	if m == nil {
		resp.code, resp.message = CodeUnknownMethod, fmt.Sprintf("no method %q", req.Method)
		return resp
	}
	arg := reflect.New(m.arg)
	if err := decodeStrict(req.Args, arg.Interface()); err != nil {
		resp.code, resp.message = CodeBadArgs, fmt.Sprintf("arguments for %s: %v", m.arg, err)
		return resp
	}
	defer func() {
		if p := recover(); p != nil {
			s.logf("rpc: %s panicked: %v\n%s", req.Method, p, debug.Stack())
			resp.code, resp.message, resp.result = CodePanic, fmt.Sprint(p), nil
		}
	}()
	s.calls.Add(1)
	out := m.fn.Call([]reflect.Value{reflect.ValueOf(ctx), arg.Elem()})
	if err, _ := out[1].Interface().(error); err != nil {
		resp.code, resp.message = CodeError, err.Error()
		return resp
	}
	resp.result = out[0].Interface()
	return resp
}
