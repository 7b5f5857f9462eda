package pipelab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

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
	writer := fs.String("writer", "write", "write or vmsplice (throughput, raw path)")
	huge := fs.String("huge", HugeNone, "back the buffer with huge pages: none, hugetlb or thp")
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
		buf, release, err := writeBuffer(*chunk, *huge)
		if errors.Is(err, errHugeRefused) {
			// A documented refusal: tell the parent by the exit status,
			// so that it skips this run and fails on anything else.
			// TODO(issue 14): return procs.ExitCode once procs has it.
			fmt.Fprintf(os.Stderr, "%s: %v\n", BenchRole, err)
			os.Exit(exitHugeRefused)
		}
		if err != nil {
			return err
		}
		defer release()
		for i := range buf {
			buf[i] = 'a' + byte(i%26)
		}
		if *writer == "vmsplice" {
			if *path != PathRaw {
				return errors.New("vmsplice needs -path raw")
			}
			return vmspliceN(1, buf, *n)
		}
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

// Huge-page backings of the writer's buffer.
const (
	HugeNone    = "none"
	HugeTLB     = "hugetlb" // MAP_HUGETLB, from the reserved pool
	HugeTHP     = "thp"     // madvise(MADV_HUGEPAGE): transparent huge pages
	hugePageLen = 2 << 20
)

// errHugeRefused marks a huge-page request the system turned down for one
// of the documented reasons: mmap(MAP_HUGETLB) or madvise(MADV_HUGEPAGE)
// failing with EINVAL (the kernel or the mapping does not support it),
// ENOMEM (no huge page free) or EPERM (not allowed), or the kernel backing
// a MADV_HUGEPAGE buffer with small pages after all (transparent huge
// pages are a hint it may decline). Any other error is a failure.
var errHugeRefused = errors.New("huge pages refused")

// exitHugeRefused is the exit status of a BenchRole child whose huge-page
// request was refused (errHugeRefused): the run is skipped, not failed.
const exitHugeRefused = 3

// hugeErr wraps err from a huge-page request, marked with errHugeRefused
// when its errno is one of the documented refusals.
func hugeErr(call string, err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w: %s: %w", errHugeRefused, call, err)
	}
	return fmt.Errorf("%s: %w", call, err)
}

// writeBuffer returns a buffer of n bytes, backed by huge pages if huge
// says so, and the function that releases it. A refused huge-page request
// is an errHugeRefused error.
func writeBuffer(n int, huge string) ([]byte, func(), error) {
	switch huge {
	case HugeNone, "":
		return make([]byte, n), func() {}, nil
	case HugeTLB:
		size := (n + hugePageLen - 1) / hugePageLen * hugePageLen
		m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_HUGETLB)
		if err != nil {
			return nil, nil, hugeErr("mmap MAP_HUGETLB", err)
		}
		return m[:n], func() { unix.Munmap(m) }, nil
	case HugeTHP:
		// Map one huge page more than needed, so that an aligned run of
		// whole huge pages fits inside.
		size := (n + hugePageLen - 1) / hugePageLen * hugePageLen
		m, err := unix.Mmap(-1, 0, size+hugePageLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return nil, nil, fmt.Errorf("mmap: %w", err)
		}
		release := func() { unix.Munmap(m) }
		off := 0
		if r := int(uintptr(unsafe.Pointer(&m[0])) % hugePageLen); r != 0 {
			off = hugePageLen - r
		}
		buf := m[off : off+size]
		if err := unix.Madvise(buf, unix.MADV_HUGEPAGE); err != nil {
			release()
			return nil, nil, hugeErr("madvise MADV_HUGEPAGE", err)
		}
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1 // fault the pages in
		}
		kb, err := anonHugeKB()
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("check transparent huge pages: %w", err)
		}
		if kb < int64(size>>10) {
			release()
			return nil, nil, fmt.Errorf("%w: transparent huge pages not granted (AnonHugePages %d kB of %d)", errHugeRefused, kb, size>>10)
		}
		return buf[:n], release, nil
	}
	return nil, nil, fmt.Errorf("-huge %q: want none, hugetlb or thp", huge)
}

// anonHugeKB reads AnonHugePages from /proc/self/smaps_rollup.
func anonHugeKB() (int64, error) {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "AnonHugePages:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no AnonHugePages in smaps_rollup")
}

// vmspliceN hands n bytes from buf, again and again, to the pipe fd with
// vmsplice(2): the pipe references the buffer's pages instead of copying
// them. The caller must not change buf until the reader has consumed it;
// here its contents never change.
func vmspliceN(fd int, buf []byte, n int64) error {
	for left := n; left > 0; {
		p := buf[:min(int64(len(buf)), left)]
		for len(p) > 0 {
			iov := []unix.Iovec{{Base: &p[0]}}
			iov[0].SetLen(len(p))
			k, err := unix.Vmsplice(fd, iov, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("vmsplice: %w", err)
			}
			p = p[k:]
			left -= int64(k)
		}
	}
	return nil
}
