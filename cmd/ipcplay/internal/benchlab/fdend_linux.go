package benchlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The process ends use raw, blocking descriptors and read(2)/write(2), as
// lmbench and perf bench do: no Go poller between the program and the
// kernel.

// streamEnd is a byte stream (pipe, stream socket): a message is len(b)
// bytes, read in as many reads as it takes.
type streamEnd struct{ r, w int }

func (e *streamEnd) Send(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(e.w, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		b = b[n:]
	}
	return nil
}

func (e *streamEnd) Recv(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(e.r, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("read", err)
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b = b[n:]
	}
	return nil
}

func (e *streamEnd) Close() error { return closeFDs(e.r, e.w) }

// dgramEnd is a message socket (seqpacket, datagram, UDP): one message is
// one write and one read.
type dgramEnd struct{ fd int }

func (e *dgramEnd) Send(b []byte) error {
	for {
		n, err := unix.Write(e.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("send", err)
		}
		if n != len(b) {
			return fmt.Errorf("send: %d of %d bytes", n, len(b))
		}
		return nil
	}
}

func (e *dgramEnd) Recv(b []byte) error {
	for {
		n, _, flags, _, err := unix.Recvmsg(e.fd, b, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("recvmsg", err)
		}
		if flags&unix.MSG_TRUNC != 0 || n != len(b) {
			return errLength(n, len(b))
		}
		return nil
	}
}

func (e *dgramEnd) Close() error { return closeFDs(e.fd, e.fd) }

// eventEnd carries b[0] as an eventfd counter value.
type eventEnd struct{ r, w int }

func (e *eventEnd) Send(b []byte) error {
	var v [8]byte
	binary.NativeEndian.PutUint64(v[:], uint64(b[0]))
	return (&streamEnd{w: e.w}).Send(v[:])
}

func (e *eventEnd) Recv(b []byte) error {
	var v [8]byte
	if err := (&streamEnd{r: e.r}).Recv(v[:]); err != nil {
		return err
	}
	n := binary.NativeEndian.Uint64(v[:])
	if n >= eventStop {
		return errStopped
	}
	b[0] = byte(n)
	return nil
}

// eventStop is what unblock adds to the parent's own eventfd: a count no
// token reaches, so a Recv that sees it knows the cell was stopped.
const eventStop = 1 << 32

// unblockEvent wakes a Recv blocked on fd for good.
func unblockEvent(fd int) {
	var v [8]byte
	binary.NativeEndian.PutUint64(v[:], eventStop)
	unix.Write(fd, v[:])
}

// unblockMQ wakes a Recv blocked on queue fd with an empty message, which
// no cell sends.
func unblockMQ(fd int) {
	var b [1]byte
	unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 0, 0, 0, 0)
}

func (e *eventEnd) Close() error { return closeFDs(e.r, e.w) }

// mqEnd sends on one POSIX message queue and receives on the other,
// through the raw system calls (Go has no mq_* wrappers).
type mqEnd struct {
	s, r int
	tmp  []byte // mq_timedreceive wants room for the queue's msgsize
}

func (e *mqEnd) Send(b []byte) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(e.s), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("mq_timedsend", errno)
		}
		return nil
	}
}

func (e *mqEnd) Recv(b []byte) error {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(e.r), uintptr(unsafe.Pointer(&e.tmp[0])), uintptr(len(e.tmp)), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("mq_timedreceive", errno)
		}
		if int(n) != len(b) {
			return errLength(int(n), len(b))
		}
		copy(b, e.tmp[:n])
		return nil
	}
}

func (e *mqEnd) Close() error { return closeFDs(e.s, e.r) }

// mqOpen creates an anonymous message queue: opened, then unlinked at
// once, so only the descriptor (inherited by the child) keeps it.
func mqOpen(msgsize, maxmsg int) (int, error) {
	name := fmt.Sprintf("ipcplay-bench-%d-%d\x00", os.Getpid(), time.Now().UnixNano())
	p := unsafe.Pointer(unsafe.StringData(name))
	attr := [4]int64{0, int64(maxmsg), int64(msgsize), 0} // flags, maxmsg, msgsize, curmsgs
	fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(p), uintptr(unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC), 0o600, uintptr(unsafe.Pointer(&attr)), 0, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("mq_open", errno)
	}
	unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(p), 0, 0)
	return int(fd), nil
}

func closeFDs(a, b int) error {
	err := unix.Close(a)
	if b != a {
		err = errors.Join(err, unix.Close(b))
	}
	return err
}
