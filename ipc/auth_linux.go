package ipc

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// The handshake that authenticates a connection. Both ends hold the same
// secret key; neither ever sends it. Four messages, each in its own frame:
//
//	server → client  serverHello  {version, server nonce}
//	client → server  clientProof  {HMAC(key, "ipcplay-auth-v1 client" | sN | cN), client nonce cN}
//	server → client  serverProof  {HMAC(key, "ipcplay-auth-v1 server" | sN | cN)}  or a rejection
//
// The direction label inside each MAC is what defeats a reflection attack:
// a peer without the key that opens a second connection to make the server
// compute a proof for it only ever obtains "server" proofs, which the server
// never accepts from a client (and the other way round). Both nonces are
// fresh 32-byte random values, so a recorded proof cannot be replayed.
//
// On a Unix socket the server checks the peer's uid with SO_PEERCRED before
// it sends anything. Until the handshake is done both ends accept only
// frames of at most authMaxFrame bytes.

const (
	authVersion  = 1
	nonceLen     = 32
	authMaxFrame = 256
	labelClient  = "ipcplay-auth-v1 client"
	labelServer  = "ipcplay-auth-v1 server"
)

// DefaultHandshakeTimeout bounds a handshake when the caller sets no
// timeout of its own.
const DefaultHandshakeTimeout = 5 * time.Second

// MinKeyLen is the shortest key the handshake accepts.
const MinKeyLen = 16

// ErrAuth is matched (with errors.Is) by every *AuthError.
var ErrAuth = errors.New("authentication failed")

// The causes an *AuthError wraps; match them with errors.Is.
var (
	ErrWrongKey         = errors.New("peer does not hold the key")
	ErrRejected         = errors.New("rejected by the peer")
	ErrPeerUID          = errors.New("peer uid not allowed")
	ErrHandshakeTimeout = errors.New("handshake timed out")
	ErrHandshake        = errors.New("malformed handshake message")
	ErrShortKey         = fmt.Errorf("key shorter than %d bytes", MinKeyLen)
)

// AuthError reports a failed handshake. Side is the end that reports it:
// "server" or "client".
type AuthError struct {
	Side   string
	Reason string // what the peer said when it rejected us, if it did
	Err    error  // ErrWrongKey, ErrRejected, ErrPeerUID, ErrHandshakeTimeout, ErrHandshake, or an I/O error
}

func (e *AuthError) Error() string {
	s := e.Side + " handshake: " + e.Err.Error()
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *AuthError) Unwrap() error { return e.Err }

// Is makes every AuthError match ErrAuth.
func (e *AuthError) Is(target error) bool { return target == ErrAuth }

type serverHello struct {
	//lint:ignore U1000 msgpack reads its tag
	_msgpack struct{} `msgpack:",as_array"`
	Version  int
	Nonce    []byte
}

type clientProof struct {
	//lint:ignore U1000 msgpack reads its tag
	_msgpack struct{} `msgpack:",as_array"`
	MAC      []byte
	Nonce    []byte
}

type serverProof struct {
	//lint:ignore U1000 msgpack reads its tag
	_msgpack struct{} `msgpack:",as_array"`
	MAC      []byte
	Reason   string // set when the server rejects the client
}

// AuthConfig is what the server side of a handshake needs.
type AuthConfig struct {
	// Key is the shared secret, at least MinKeyLen bytes.
	Key []byte

	// Timeout bounds the whole handshake; zero means
	// DefaultHandshakeTimeout.
	Timeout time.Duration

	// AllowUID decides which peer uids may connect over a Unix socket.
	// Nil allows only the server's own uid.
	AllowUID func(uid uint32) bool

	// MaxFrame is the frame limit set once the peer is authenticated;
	// zero means DefaultMaxFrame.
	MaxFrame int
}

func (cfg *AuthConfig) timeout() time.Duration {
	if cfg.Timeout > 0 {
		return cfg.Timeout
	}
	return DefaultHandshakeTimeout
}

func (cfg *AuthConfig) maxFrame() int {
	if cfg.MaxFrame > 0 {
		return cfg.MaxFrame
	}
	return DefaultMaxFrame
}

func mac(key []byte, label string, sNonce, cNonce []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(label))
	h.Write(sNonce)
	h.Write(cNonce)
	return h.Sum(nil)
}

func newNonce() ([]byte, error) {
	b := make([]byte, nonceLen)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return b, nil
}

// PeerUID returns the uid of the process at the other end of a Unix
// socket, as the kernel recorded it when the connection was made.
func PeerUID(c *Conn) (uint32, error) {
	raw, err := c.nc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return 0, fmt.Errorf("peer credentials: %w", os.NewSyscallError("getsockopt SO_PEERCRED", cerr))
	}
	return cred.Uid, nil
}

// handshakeCtx bounds a handshake: ctx's own deadline, or the timeout,
// whichever comes first. Running out of time reports ErrHandshakeTimeout.
func handshakeCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, ErrHandshakeTimeout)
}

// authFail builds the AuthError for an error from a handshake step: a
// timeout, a peer that went away, or a message that breaks the protocol.
func authFail(side string, err error) *AuthError {
	var ae *AuthError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrHandshakeTimeout):
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: %w", ErrHandshakeTimeout, err)
	case isClosed(err):
		err = fmt.Errorf("peer closed the connection: %w", err)
	default:
		err = fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return &AuthError{Side: side, Err: err}
}

// reasonTimeout is what a server that ran out of time tells the client.
const reasonTimeout = "handshake timed out on the server"

// tellTimeout tells the client that the server's handshake timed out, so
// that a client which was merely slow (on a loaded machine, say) learns
// why the server hangs up instead of seeing a bare close. It waits
// briefly: the socket buffer has room for a message this small unless the
// client sent far more than the handshake allows.
func tellTimeout(c *Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c.SendContext(ctx, &serverProof{Reason: reasonTimeout})
}

// rejection returns the server's reason for rejecting us, if it sent
// one before it closed the connection: a client whose proof could not be
// written because the server had hung up may still find it waiting.
func rejection(c *Conn) string {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	frame, err := c.recvFrameContext(ctx)
	if err != nil {
		return ""
	}
	var rej serverProof
	if unmarshalOne(frame, &rej) != nil {
		return ""
	}
	return rej.Reason
}

// isClosed reports whether err says the peer went away.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
}

// recvFrameContext is RecvFrame bounded by ctx, like RecvContext.
func recvFrameContext(ctx context.Context, c *Conn) ([]byte, error) {
	return c.recvFrameContext(ctx)
}

// unmarshalOne decodes the first value of frame into v.
func unmarshalOne(frame []byte, v any) error {
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(frame))
	return dec.Decode(v)
}

// ServerHandshake authenticates the client at the other end of c, which
// must be fresh (nothing sent or received yet). It checks the peer's uid,
// then runs the challenge and response. On success c accepts frames up to
// cfg.MaxFrame; on failure it returns an *AuthError and the caller closes
// c. A client that fails is told only that it was rejected.
func ServerHandshake(ctx context.Context, c *Conn, cfg AuthConfig) error {
	if len(cfg.Key) < MinKeyLen {
		return &AuthError{Side: "server", Err: ErrShortKey}
	}
	ctx, cancel := handshakeCtx(ctx, cfg.timeout())
	defer cancel()
	c.SetMaxFrame(authMaxFrame)

	uid, err := PeerUID(c)
	if err != nil {
		return authFail("server", err)
	}
	allow := cfg.AllowUID
	if allow == nil {
		me := uint32(os.Getuid())
		allow = func(uid uint32) bool { return uid == me }
	}
	if !allow(uid) {
		c.SendContext(ctx, &serverProof{Reason: "uid not allowed"})
		return &AuthError{Side: "server", Err: ErrPeerUID, Reason: fmt.Sprintf("uid %d", uid)}
	}

	sNonce, err := newNonce()
	if err != nil {
		return authFail("server", err)
	}
	if err := c.SendContext(ctx, &serverHello{Version: authVersion, Nonce: sNonce}); err != nil {
		return authFail("server", err)
	}
	var cp clientProof
	if err := c.RecvContext(ctx, &cp); err != nil {
		if errors.Is(err, ErrHandshakeTimeout) {
			tellTimeout(c)
		}
		return authFail("server", err)
	}
	if len(cp.Nonce) != nonceLen {
		c.SendContext(ctx, &serverProof{Reason: "authentication failed"})
		return &AuthError{Side: "server", Err: ErrHandshake, Reason: fmt.Sprintf("client nonce of %d bytes", len(cp.Nonce))}
	}
	if !hmac.Equal(cp.MAC, mac(cfg.Key, labelClient, sNonce, cp.Nonce)) {
		c.SendContext(ctx, &serverProof{Reason: "authentication failed"})
		return &AuthError{Side: "server", Err: ErrWrongKey}
	}
	if err := c.SendContext(ctx, &serverProof{MAC: mac(cfg.Key, labelServer, sNonce, cp.Nonce)}); err != nil {
		return authFail("server", err)
	}
	c.SetMaxFrame(cfg.maxFrame())
	return nil
}

// ClientHandshake proves to the server at the other end of c that this
// process holds key, and checks that the server holds it too. timeout
// bounds the handshake (zero means DefaultHandshakeTimeout). On success c
// accepts frames up to maxFrame (zero means DefaultMaxFrame); on failure it
// returns an *AuthError and the caller closes c.
func ClientHandshake(ctx context.Context, c *Conn, key []byte, timeout time.Duration, maxFrame int) error {
	if len(key) < MinKeyLen {
		return &AuthError{Side: "client", Err: ErrShortKey}
	}
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	ctx, cancel := handshakeCtx(ctx, timeout)
	defer cancel()
	c.SetMaxFrame(authMaxFrame)

	// The first message is a hello, or a rejection (of our uid).
	frame, err := recvFrameContext(ctx, c)
	if err != nil {
		return authFail("client", err)
	}
	var hello serverHello
	if err := unmarshalOne(frame, &hello); err != nil || hello.Version != authVersion || len(hello.Nonce) != nonceLen {
		var rej serverProof
		if unmarshalOne(frame, &rej) == nil && rej.Reason != "" {
			return &AuthError{Side: "client", Err: ErrRejected, Reason: rej.Reason}
		}
		return &AuthError{Side: "client", Err: ErrHandshake, Reason: "bad server hello"}
	}
	cNonce, err := newNonce()
	if err != nil {
		return authFail("client", err)
	}
	if err := c.SendContext(ctx, &clientProof{MAC: mac(key, labelClient, hello.Nonce, cNonce), Nonce: cNonce}); err != nil {
		if reason := rejection(c); reason != "" {
			return &AuthError{Side: "client", Err: ErrRejected, Reason: reason}
		}
		return authFail("client", err)
	}
	var sp serverProof
	if err := c.RecvContext(ctx, &sp); err != nil {
		if isClosed(err) {
			return &AuthError{Side: "client", Err: ErrRejected, Reason: "server closed the connection"}
		}
		return authFail("client", err)
	}
	if sp.Reason != "" {
		return &AuthError{Side: "client", Err: ErrRejected, Reason: sp.Reason}
	}
	if !hmac.Equal(sp.MAC, mac(key, labelServer, hello.Nonce, cNonce)) {
		return &AuthError{Side: "client", Err: ErrWrongKey}
	}
	c.SetMaxFrame(maxFrame)
	return nil
}

// DialAuth connects to the Unix stream socket at path and authenticates
// with key in both directions; see ClientHandshake.
func DialAuth(ctx context.Context, path string, key []byte, timeout time.Duration) (*Conn, error) {
	if len(key) < MinKeyLen {
		return nil, &AuthError{Side: "client", Err: ErrShortKey}
	}
	c, err := Dial(ctx, Stream, path)
	if err != nil {
		return nil, err
	}
	if err := ClientHandshake(ctx, c, key, timeout, 0); err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	return c, nil
}

// AcceptAuth waits for a connection on ln and authenticates it; see
// ServerHandshake. A peer that fails is closed and reported as an
// *AuthError, and ln stays usable. The handshake runs in the caller's
// goroutine, so a stalled peer holds AcceptAuth for up to the handshake
// timeout; Server runs handshakes concurrently instead.
func AcceptAuth(ctx context.Context, ln *net.UnixListener, cfg AuthConfig) (*Conn, error) {
	c, err := Accept(ln)
	if err != nil {
		return nil, err
	}
	if err := ServerHandshake(ctx, c, cfg); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
