package procs

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The descriptor slots a child finds its inherited files in. They are a
// contract between a parent that fills [Cmd.ExtraFiles] and the role that
// opens them with [ChildFile]: ExtraFiles[fd-3] becomes fd.
const (
	FDControl = 3 // a control socket, when the role has one
	FDShm     = 4 // a shared memory region (a memfd)
	FDExtra   = 5 // the first role-specific descriptor
)

// Kind is the type of file a child expects in a descriptor slot.
type Kind int

const (
	AnyKind Kind = iota
	Memfd        // an anonymous memory file from memfd_create
	Socket
	Pipe
)

func (k Kind) String() string {
	switch k {
	case Memfd:
		return "memfd"
	case Socket:
		return "socket"
	case Pipe:
		return "pipe"
	}
	return "any"
}

// FDError reports a descriptor slot that is closed or holds the wrong kind of
// file.
type FDError struct {
	FD   int
	Want Kind
	Got  string // what the slot holds, "closed" if nothing
	Err  error
}

func (e *FDError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("fd %d: want %v: %v", e.FD, e.Want, e.Err)
	}
	return fmt.Sprintf("fd %d: want %v, got %s", e.FD, e.Want, e.Got)
}

func (e *FDError) Unwrap() error { return e.Err }

// ChildFile returns the inherited descriptor fd as an *os.File named name,
// after checking that it is open and of the wanted kind.
func ChildFile(fd int, want Kind, name string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		if err == unix.EBADF {
			return nil, &FDError{FD: fd, Want: want, Got: "closed"}
		}
		return nil, &FDError{FD: fd, Want: want, Err: os.NewSyscallError("fstat", err)}
	}
	got := kindOf(fd, st.Mode)
	if want != AnyKind && got != want.String() {
		return nil, &FDError{FD: fd, Want: want, Got: got}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func kindOf(fd int, mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFIFO:
		return "pipe"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFREG:
		target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if strings.HasPrefix(target, "/memfd:") {
			return "memfd"
		}
		return "regular file"
	}
	return fmt.Sprintf("file of mode %#o", mode&unix.S_IFMT)
}
