package shm

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// reopen maps r's memfd a second time, through a new descriptor, the way a
// child maps the descriptor it inherited.
func reopen(t *testing.T, r *Region, size int) *Region {
	t.Helper()
	fd, err := unix.Dup(int(r.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "dup")
	r2, err := Open(f, size)
	if err != nil {
		f.Close()
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r2.Close() })
	return r2
}

func newRegion(t *testing.T, size int) *Region {
	t.Helper()
	r, err := New("shm-test", size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestTwoMappingsShareMemory(t *testing.T) {
	r := newRegion(t, 4096)
	r2 := reopen(t, r, 4096)
	if &r.Bytes()[0] == &r2.Bytes()[0] {
		t.Fatal("second Open returned the same mapping")
	}
	a, err := r.Int64s(8, 4)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r2.Int64s(8, 4)
	if err != nil {
		t.Fatal(err)
	}
	a.Store(3, 42)
	b.Add(3, 1)
	if got := a.Load(3); got != 43 {
		t.Fatalf("after Store 42 in one mapping and Add 1 in the other: %d", got)
	}
	f1, _ := r.Flag(0)
	f2, _ := r2.Flag(0)
	if !f1.Set() || f2.Set() || !f2.IsSet() {
		t.Fatal("a flag set through one mapping is not set in the other")
	}
	f2.Clear()
	if f1.IsSet() {
		t.Fatal("a flag cleared through one mapping is still set in the other")
	}
	if r.Len() != 4096 || r2.Len() != 4096 {
		t.Fatalf("Len = %d, %d", r.Len(), r2.Len())
	}
}

func TestOpenMismatch(t *testing.T) {
	r := newRegion(t, 4096)
	fd, _ := unix.Dup(int(r.File().Fd()))
	f := os.NewFile(uintptr(fd), "dup")
	defer f.Close()
	pr, pw, _ := os.Pipe()
	defer pr.Close()
	defer pw.Close()
	plain, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	unsealed := os.NewFile(uintptr(plain), "unsealed")
	defer unsealed.Close()
	unix.Ftruncate(plain, 4096)
	disk, err := os.CreateTemp(t.TempDir(), "region")
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	disk.Truncate(4096)

	for _, tc := range []struct {
		f    *os.File
		size int
		what string
		msg  string
	}{
		{f, 8192, "size", "want 8192, got 4096"},
		{pr, 4096, "descriptor", "want a memfd, got a pipe"},
		{disk, 4096, "descriptor", "want a memfd, got the file " + disk.Name()},
		{unsealed, 4096, "seals", "want 0x7, got 0x1"},
	} {
		_, err := Open(tc.f, tc.size)
		var me *MismatchError
		if !errors.As(err, &me) || me.What != tc.what || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Open(%s, %d) = %v, want a %s mismatch saying %q", tc.f.Name(), tc.size, err, tc.what, tc.msg)
		}
	}
}

func TestRegionIsSealed(t *testing.T) {
	r := newRegion(t, 4096)
	fd := int(r.File().Fd())
	for _, size := range []int64{0, 8192} {
		if err := unix.Ftruncate(fd, size); err != unix.EPERM {
			t.Errorf("ftruncate(%d) of a sealed region = %v, want EPERM", size, err)
		}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); err != unix.EPERM {
		t.Errorf("adding a seal after F_SEAL_SEAL = %v, want EPERM", err)
	}
}

func TestNothingOnDisk(t *testing.T) {
	before, _ := os.ReadDir("/dev/shm")
	r, err := New("shm-test-visible", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	maps, _ := os.ReadFile("/proc/self/maps")
	if !strings.Contains(string(maps), "/memfd:shm-test-visible") {
		t.Error("the region is not in /proc/self/maps as /memfd:shm-test-visible")
	}
	after, _ := os.ReadDir("/dev/shm")
	if len(after) != len(before) {
		t.Errorf("/dev/shm had %d entries, has %d with a region mapped", len(before), len(after))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	maps, _ = os.ReadFile("/proc/self/maps")
	if strings.Contains(string(maps), "/memfd:shm-test-visible") {
		t.Error("the region is still mapped after Close")
	}
	if err := r.Close(); err == nil {
		t.Error("second Close = nil")
	}
}

func TestNewErrors(t *testing.T) {
	for _, size := range []int{0, -1} {
		if _, err := New("bad", size); err == nil {
			t.Errorf("New(size %d) = nil error", size)
		}
	}
}

func TestViewBounds(t *testing.T) {
	mem := Local(64)
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"flag past the end", func() error { _, err := FlagAt(mem, 64); return err }},
		{"flag straddling the end", func() error { _, err := FlagAt(mem, 62); return err }},
		{"flag misaligned", func() error { _, err := FlagAt(mem, 2); return err }},
		{"flag negative offset", func() error { _, err := FlagAt(mem, -4); return err }},
		{"int64s too long", func() error { _, err := Int64sAt(mem, 8, 8); return err }},
		{"int64s misaligned", func() error { _, err := Int64sAt(mem, 4, 2); return err }},
		{"int64s negative length", func() error { _, err := Int64sAt(mem, 0, -1); return err }},
	} {
		if tc.err() == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	a, err := Int64sAt(mem, 56, 1)
	if err != nil || a.Len() != 1 {
		t.Fatalf("last word: %v", err)
	}
	if a, err := Int64sAt(mem, 0, 0); err != nil || a.Len() != 0 {
		t.Fatalf("empty array: %v", err)
	}
}

// TestConcurrentViews hammers one region from many goroutines: exactly one
// Set wins, and no Add is lost. Run it with -race too.
func TestConcurrentViews(t *testing.T) {
	r := newRegion(t, 4096)
	flag, _ := r.Flag(0)
	vals, _ := r.Int64s(8, 2)
	const goroutines, adds = 8, 10000
	var wins sync.WaitGroup
	won := make(chan int, goroutines)
	for g := range goroutines {
		wins.Go(func() {
			for range adds {
				vals.Add(0, 1)
				vals.At(1).Add(2)
			}
			if flag.Set() {
				won <- g
			}
		})
	}
	wins.Wait()
	close(won)
	if n := len(won); n != 1 {
		t.Errorf("%d goroutines saw their Set win, want exactly 1", n)
	}
	if got := vals.Load(0); got != goroutines*adds {
		t.Errorf("counter = %d, want %d", got, goroutines*adds)
	}
	if got := vals.Load(1); got != 2*goroutines*adds {
		t.Errorf("second counter = %d, want %d", got, 2*goroutines*adds)
	}
	if !vals.CompareAndSwap(0, goroutines*adds, -1) || vals.CompareAndSwap(0, 0, 1) || vals.Load(0) != -1 {
		t.Error("CompareAndSwap")
	}
}
