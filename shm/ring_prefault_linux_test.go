package shm

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mappedPages counts the pages of b that this process's page tables map,
// from /proc/self/pagemap (bit 63 of a page's entry: present).
func mappedPages(t *testing.T, b []byte) (present, pages int) {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Skipf("no pagemap: %v", err)
	}
	defer f.Close()
	const page = 4096
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b))) &^ (page - 1)
	end := (uintptr(unsafe.Pointer(unsafe.SliceData(b))) + uintptr(len(b)) + page - 1) &^ (page - 1)
	buf := make([]byte, 8*(end-start)/page)
	if _, err := f.ReadAt(buf, int64(start/page*8)); err != nil {
		t.Fatalf("read pagemap: %v", err)
	}
	for i := 0; i < len(buf); i += 8 {
		if binary.LittleEndian.Uint64(buf[i:])&(1<<63) != 0 {
			present++
		}
	}
	return present, len(buf) / 8
}

// TestRingAttachPrefaults: a producer or consumer attaching through a
// mapping of its own (as another process does) finds every page of the
// ring's slots mapped afterwards, so that no page fault lands inside the
// stream. A kernel without MADV_POPULATE_WRITE skips.
func TestRingAttachPrefaults(t *testing.T) {
	cfg := RingConfig{Slots: 4096, MaxMessage: 64}
	for _, side := range []string{"producer", "consumer"} {
		t.Run("side="+side, func(t *testing.T) {
			reg, _, _ := newRingRegion(t, cfg, 0)
			fd, err := unix.FcntlInt(reg.File().Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			f := os.NewFile(uintptr(fd), "dup")
			other, err := Open(f, reg.Len())
			if err != nil {
				f.Close()
				t.Fatal(err)
			}
			defer other.Close()
			probe := other.Bytes()[reg.Len()-4096:]
			if err := unix.Madvise(probe, unix.MADV_POPULATE_WRITE); errors.Is(err, unix.EINVAL) {
				t.Skip("no MADV_POPULATE_WRITE")
			}
			r, err := OpenRing(other.Bytes(), 0)
			if err != nil {
				t.Fatal(err)
			}
			slots := r.mem[r.h.slotsOff():]
			if n, all := mappedPages(t, slots); n == all {
				t.Fatalf("all %d pages mapped before attaching: the test cannot tell", all)
			}
			if side == "producer" {
				p, err := r.Producer(RingOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
			} else {
				c, err := r.Consumer(RingOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			if n, all := mappedPages(t, slots); n != all {
				t.Errorf("%d of %d pages of the slots mapped after attaching, want all", n, all)
			}
		})
	}
}
