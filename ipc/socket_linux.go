package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Pair returns a connected pair of sockets: one end as a Conn for this
// process, the other as a file to hand to a child in procs.Cmd.ExtraFiles.
// Close the file right after starting the child, or the Conn never sees
// EOF when the child exits.
func Pair(network Network) (*Conn, *os.File, error) {
	typ := unix.SOCK_STREAM
	switch network {
	case Stream:
	case SeqPacket:
		typ = unix.SOCK_SEQPACKET
	default:
		return nil, nil, fmt.Errorf("socket pair: unknown network %q", network)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socket pair: %w", os.NewSyscallError("socketpair", err))
	}
	mine := os.NewFile(uintptr(fds[0]), "ipc-parent")
	theirs := os.NewFile(uintptr(fds[1]), "ipc-child")
	c, err := FileConn(mine)
	if err != nil {
		theirs.Close()
		return nil, nil, err
	}
	return c, theirs, nil
}

// FileConn returns a Conn over the socket in f, such as a descriptor a
// child inherited from Pair. It closes f: the Conn holds its own copy.
func FileConn(f *os.File) (*Conn, error) {
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", f.Name(), err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("socket %s: %T is not a Unix socket", f.Name(), nc)
	}
	c, err := NewConn(uc)
	if err != nil {
		uc.Close()
		return nil, err
	}
	return c, nil
}

// PrivateDir creates a new directory that only the current user can enter
// (mode 0700), for sockets that other users must not reach. The caller
// removes it.
func PrivateDir() (string, error) {
	dir, err := os.MkdirTemp("", "ipcplay-")
	if err != nil {
		return "", fmt.Errorf("private dir: %w", err)
	}
	return dir, nil
}

// Listen listens on a Unix socket at path, whose directory must be private
// to this user (no group or other permission bits), and makes the socket
// itself mode 0600. The socket file is removed when the listener closes.
func Listen(network Network, path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("listen %s: directory %s has mode %#o, want 0700", path, dir, perm)
	}
	ln, err := net.ListenUnix(string(network), &net.UnixAddr{Name: path, Net: string(network)})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return ln, nil
}

// ErrServerRunning is matched (with errors.Is) by the error of
// ListenReplace when a server is listening at the path.
var ErrServerRunning = errors.New("a server is already listening there")

// ListenReplace is Listen for a server that may have been killed before
// it could remove its socket file (SIGKILL, a crash): if a file is in the
// way, it connects to it. A refused connection means nobody listens (a
// stale file), and the file is replaced; an accepted one means a live
// server, and ListenReplace fails with an error matching
// ErrServerRunning, leaving it alone. A path that is not a socket, or a
// socket it cannot tell about, is an error too. Two processes starting at
// once cannot both replace the file: the check and the replacement hold
// an exclusive flock on the directory.
func ListenReplace(network Network, path string) (*net.UnixListener, error) {
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	defer dir.Close() // and so unlock
	if err := flock(dir); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	ln, err := Listen(network, path)
	if err == nil || !errors.Is(err, unix.EADDRINUSE) {
		return ln, err
	}
	st, serr := os.Lstat(path)
	switch {
	case errors.Is(serr, os.ErrNotExist):
		return Listen(network, path) // gone meanwhile
	case serr != nil:
		return nil, fmt.Errorf("listen %s: %w", path, serr)
	case st.Mode().Type() != os.ModeSocket:
		return nil, fmt.Errorf("listen %s: the path exists and is not a socket", path)
	}
	d := net.Dialer{Timeout: time.Second}
	nc, derr := d.Dial(string(network), path)
	if derr == nil {
		nc.Close()
		return nil, fmt.Errorf("listen %s: %w", path, ErrServerRunning)
	}
	if !errors.Is(derr, unix.ECONNREFUSED) {
		return nil, fmt.Errorf("listen %s: a socket file is there and connecting to it to see whether it is stale failed: %w", path, derr)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
	}
	return Listen(network, path)
}

// flock takes an exclusive lock on f, held until f is closed.
func flock(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) {
		for {
			if ferr = unix.Flock(int(fd), unix.LOCK_EX); ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if ferr != nil {
		return os.NewSyscallError("flock", ferr)
	}
	return nil
}

// Accept waits for a connection on ln and returns it as a Conn.
func Accept(ln *net.UnixListener) (*Conn, error) {
	uc, err := ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	c, err := NewConn(uc)
	if err != nil {
		uc.Close()
		return nil, err
	}
	return c, nil
}

// Dial connects to the Unix socket at path.
func Dial(ctx context.Context, network Network, path string) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, string(network), path)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	c, err := NewConn(nc.(*net.UnixConn))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// streamBuf is the send buffer asked for on the sockets that carry a
// stream of values between two processes: a queue's connections to its
// hub and its lanes, and the raw socket they are measured against. A writer that fills the buffer sleeps
// until the reader has drained three quarters of it, so its size sets how
// often both sides sleep and wake: at the usual default (208 KiB) that is
// once every 1,000-1,500 values of 64 bytes. The kernel caps it at
// net.core.wmem_max; for a Unix stream socket only the writer's side
// counts.
const streamBuf = 1 << 20

// sizeStreamBuf asks for streamBuf on fd; a kernel that caps it lower
// keeps its cap.
func sizeStreamBuf(fd int) {
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, streamBuf)
}
