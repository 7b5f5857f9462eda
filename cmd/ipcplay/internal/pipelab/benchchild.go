package pipelab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// BenchRole is the child role of `ipcplay pipes bench`. Register it with
// [BenchMain] in main and TestMain.
const BenchRole = "ipcplay-pipes-bench"

// Paths: how a side of a benchmark does its I/O.
const (
	// PathFile goes through *os.File on a non-blocking descriptor: the Go
	// runtime's poller parks the goroutine when the pipe is empty or full.
	PathFile = "file"
	// PathRaw calls read(2) and write(2) through x/sys/unix on a blocking
	// descriptor from a goroutine locked to its OS thread: the thread
	// sleeps in the kernel, as a C program's would.
	PathRaw = "raw"
)

// BenchMain is the entry point of [BenchRole]. With -test pingpong it
// echoes each byte from stdin to stdout until EOF; with -test throughput it
// waits for one byte on stdin, then writes -bytes bytes to stdout in -chunk
// writes.
func BenchMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(BenchRole, flag.ContinueOnError)
	test := fs.String("test", "pingpong", "pingpong or throughput")
	path := fs.String("path", PathRaw, "file or raw")
	n := fs.Int64("bytes", 0, "bytes to write (throughput)")
	chunk := fs.Int("chunk", 64<<10, "bytes per write (throughput)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var in, out endpoint
	switch *path {
	case PathRaw:
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		in, out = rawFD(0), rawFD(1)
	case PathFile:
		// Inherited pipes are blocking; made non-blocking, os.NewFile
		// registers them with the poller.
		for _, fd := range []int{0, 1} {
			if err := unix.SetNonblock(fd, true); err != nil {
				return fmt.Errorf("set non-blocking: %w", err)
			}
		}
		in, out = os.NewFile(0, "stdin"), os.NewFile(1, "stdout")
	default:
		return fmt.Errorf("-path %q: want file or raw", *path)
	}
	switch *test {
	case "pingpong":
		var b [1]byte
		for {
			k, err := in.Read(b[:])
			if k == 0 || errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if _, err := out.Write(b[:]); err != nil {
				return err
			}
		}
	case "throughput":
		var b [1]byte
		if _, err := io.ReadFull(in, b[:]); err != nil {
			return fmt.Errorf("wait for go: %w", err)
		}
		buf := make([]byte, *chunk)
		for left := *n; left > 0; {
			k, err := out.Write(buf[:min(int64(len(buf)), left)])
			left -= int64(k)
			if err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("-test %q: want pingpong or throughput", *test)
}

// endpoint is one side of a pipe, an *os.File or a raw descriptor.
type endpoint interface {
	io.Reader
	io.Writer
}

// rawFD does blocking read(2) and write(2) on a descriptor. A read of 0
// bytes is EOF.
type rawFD int

func (fd rawFD) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(fd), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (fd rawFD) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(int(fd), p[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}
