package ipc

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

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
