package rpclab

import "fmt"

// MaxSocketPath is the longest path a Unix socket can have on Linux: the
// 108 bytes of sockaddr_un's sun_path, less the terminating NUL (unix(7)).
const MaxSocketPath = 107

// A SocketPathError is a socket path too long for sun_path. The kernel
// says only "invalid argument" for it.
type SocketPathError struct{ Path string }

func (e *SocketPathError) Error() string {
	return fmt.Sprintf("socket path of %d bytes: a Unix socket path holds at most %d (sun_path, unix(7)); use a shorter one, such as a directory under /tmp",
		len(e.Path), MaxSocketPath)
}

// CheckSocketPath returns a *SocketPathError for a path longer than
// MaxSocketPath bytes.
func CheckSocketPath(path string) error {
	if len(path) > MaxSocketPath {
		return &SocketPathError{Path: path}
	}
	return nil
}
