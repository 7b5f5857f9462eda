package shm

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"
)

// requiredSeals are set on every region: its size is fixed for its lifetime.
const requiredSeals = unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL

// A Region is shared memory backed by a memfd and mapped into this process.
// It is safe to use its views from several goroutines; Close must be called
// once, after every user of its memory is done.
type Region struct {
	f   *os.File
	mem mmap.MMap
}

// New creates a region of size bytes, filled with zeros. The name shows in
// /proc/PID/fd and /proc/PID/maps as /memfd:name; it need not be unique.
func New(name string, size int) (*Region, error) {
	if size <= 0 {
		return nil, fmt.Errorf("create region %s: size %d is not positive", name, size)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("create region %s: %w", name, os.NewSyscallError("memfd_create", err))
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("create region %s: %w", name, os.NewSyscallError("ftruncate", err))
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, requiredSeals); err != nil {
		f.Close()
		return nil, fmt.Errorf("create region %s: %w", name, os.NewSyscallError("fcntl F_ADD_SEALS", err))
	}
	r, err := mapFile(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create region %s: %w", name, err)
	}
	return r, nil
}

// Open maps a region another process created and passed down as f, usually
// the inherited descriptor procs.FDShm. It fails with a *[MismatchError] if
// f is not a sealed memfd of exactly size bytes. On success the Region owns f;
// on failure the caller still does.
func Open(f *os.File, size int) (*Region, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("open region %s: %w", f.Name(), os.NewSyscallError("fstat", err))
	}
	target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if st.Mode&unix.S_IFMT != unix.S_IFREG || !strings.HasPrefix(target, "/memfd:") {
		return nil, &MismatchError{What: "descriptor", Want: "a memfd", Got: describe(st.Mode, target)}
	}
	if st.Size != int64(size) {
		return nil, &MismatchError{What: "size", Want: fmt.Sprint(size), Got: fmt.Sprint(st.Size)}
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("open region %s: %w", f.Name(), os.NewSyscallError("fcntl F_GET_SEALS", err))
	}
	if seals&requiredSeals != requiredSeals {
		return nil, &MismatchError{What: "seals", Want: fmt.Sprintf("%#x", requiredSeals), Got: fmt.Sprintf("%#x", seals)}
	}
	r, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("open region %s: %w", f.Name(), err)
	}
	return r, nil
}

func mapFile(f *os.File, size int) (*Region, error) {
	mem, err := mmap.MapRegion(f, size, mmap.RDWR, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return &Region{f: f, mem: mem}, nil
}

func describe(mode uint32, target string) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFIFO:
		return "a pipe"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFREG:
		return "the file " + target
	}
	return fmt.Sprintf("a file of mode %#o", mode&unix.S_IFMT)
}

// MismatchError reports a region that is not what its user expected: the
// wrong kind of descriptor, the wrong size, or a missing seal.
type MismatchError struct {
	What string
	Want string
	Got  string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("shared region %s mismatch: want %s, got %s", e.What, e.Want, e.Got)
}

// File returns the memfd behind the region, to hand to a child in
// procs.Cmd.ExtraFiles. It stays owned by the region.
func (r *Region) File() *os.File { return r.f }

// Len returns the size of the region in bytes.
func (r *Region) Len() int { return len(r.mem) }

// Bytes returns the mapped memory. Words that other processes read or write
// concurrently must be accessed through the views, never directly.
func (r *Region) Bytes() []byte { return r.mem }

// Flag returns the flag stored at byte offset off.
func (r *Region) Flag(off int) (*Flag, error) { return FlagAt(r.mem, off) }

// Int64s returns the array of n int64 values starting at byte offset off.
func (r *Region) Int64s(off, n int) (*Int64Array, error) { return Int64sAt(r.mem, off, n) }

// Close unmaps the memory and closes the memfd. The memory itself lives on
// while another process still maps it or holds the descriptor. Views taken
// from the region must not be used after Close.
func (r *Region) Close() error {
	if r.mem == nil {
		return errors.New("shm: region already closed")
	}
	err := r.mem.Unmap()
	r.mem = nil
	if err != nil {
		err = fmt.Errorf("unmap region: %w", err)
	}
	if cerr := r.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close region: %w", cerr))
	}
	return err
}
