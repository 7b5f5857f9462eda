package pipes

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PipeBuf is PIPE_BUF: writes of at most this many bytes are atomic, and a
// blocking writer of a larger chunk waits until this much room is free.
const PipeBuf = 4096

// MaxSizeFile is where the kernel publishes the largest size an
// unprivileged process may give a pipe.
const MaxSizeFile = "/proc/sys/fs/pipe-max-size"

// SizeError reports a requested pipe size above the system maximum.
type SizeError struct {
	Requested int
	Max       int
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("pipe size %d is over the limit of %d (%s)", e.Requested, e.Max, MaxSizeFile)
}

// control runs fn with f's descriptor, without the side effect of
// os.File.Fd (which switches the file to blocking mode).
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// Capacity returns the capacity of the pipe f, in bytes, as the kernel
// reports it (F_GETPIPE_SZ). Either end of the pipe will do.
func Capacity(f *os.File) (int, error) {
	var n int
	err := control(f, func(fd int) error {
		var err error
		n, err = unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("F_GETPIPE_SZ %s: %w", f.Name(), err)
	}
	return n, nil
}

// MaxSize returns the largest pipe size an unprivileged process may set,
// read from /proc/sys/fs/pipe-max-size.
func MaxSize() (int, error) {
	b, err := os.ReadFile(MaxSizeFile)
	if err != nil {
		return 0, fmt.Errorf("pipe max size: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pipe max size: parse %s: %w", MaxSizeFile, err)
	}
	return n, nil
}

// Resize sets the capacity of the pipe f to at least size bytes
// (F_SETPIPE_SZ) and returns the capacity the kernel chose (it rounds up to
// a power of two pages). A size over /proc/sys/fs/pipe-max-size fails with
// a *SizeError before the kernel is asked, even for a privileged process
// that the kernel would let through, so that results do not depend on who
// runs the lab.
func Resize(f *os.File, size int) (int, error) {
	if size <= 0 {
		return 0, fmt.Errorf("resize pipe %s: size %d is not positive", f.Name(), size)
	}
	max, err := MaxSize()
	if err != nil {
		return 0, err
	}
	if size > max {
		return 0, &SizeError{Requested: size, Max: max}
	}
	var n int
	err = control(f, func(fd int) error {
		var err error
		n, err = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, size)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("F_SETPIPE_SZ %s to %d: %w", f.Name(), size, err)
	}
	return n, nil
}

// Buffered returns the number of bytes waiting in the pipe f to be read
// (FIONREAD). Either end will do: both see the same buffer.
func Buffered(f *os.File) (int, error) {
	var n int
	err := control(f, func(fd int) error {
		var err error
		n, err = BufferedFD(fd)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("FIONREAD %s: %w", f.Name(), err)
	}
	return n, nil
}

// BufferedFD is Buffered for a raw descriptor.
func BufferedFD(fd int) (int, error) {
	// FIONREAD has the same number as TIOCINQ on Linux; x/sys names only
	// the latter.
	return unix.IoctlGetInt(fd, unix.TIOCINQ)
}

// MeasureCapacity creates a pipe, resizes it to size bytes first if size is
// positive, and fills it until a write fails with EAGAIN. It returns the
// bytes it wrote (the measured capacity) and what F_GETPIPE_SZ reported for
// the same pipe.
//
// The pipe is made with pipe2(O_NONBLOCK) and written with raw write(2):
// an *os.File from os.Pipe is non-blocking only inside the Go runtime, which
// would park the goroutine on a full pipe instead of returning EAGAIN.
func MeasureCapacity(size int) (measured, reported int, err error) {
	return measureCapacity(size, unix.Write)
}

// measureCapacity is MeasureCapacity filling the pipe through write, which
// a test replaces to count what the kernel accepted.
func measureCapacity(size int, write func(fd int, b []byte) (int, error)) (measured, reported int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return 0, 0, fmt.Errorf("pipe2: %w", err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if size > 0 {
		max, err := MaxSize()
		if err != nil {
			return 0, 0, err
		}
		if size > max {
			return 0, 0, &SizeError{Requested: size, Max: max}
		}
		if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
			return 0, 0, fmt.Errorf("F_SETPIPE_SZ %d: %w", size, err)
		}
	}
	reported, err = unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("F_GETPIPE_SZ: %w", err)
	}
	chunk := make([]byte, PipeBuf)
	// Whole pages first, then single bytes for whatever room is left in
	// the last page buffer.
	for _, b := range [][]byte{chunk, chunk[:1]} {
		for {
			n, err := write(p[1], b)
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if err != nil {
				return 0, 0, fmt.Errorf("fill pipe: %w", err)
			}
			measured += n
			if measured > 1<<30 {
				return 0, 0, errors.New("fill pipe: over 1 GiB without EAGAIN")
			}
		}
	}
	return measured, reported, nil
}
