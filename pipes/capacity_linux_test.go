package pipes

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMeasuredCapacityIsFilled: the measured capacity is what the kernel
// accepted before the pipe was full, not a copy of what F_GETPIPE_SZ says
// (for which TestMeasuredCapacityMatchesKernel cannot tell the difference):
// every byte counted was accepted by a write, the fill ended on EAGAIN, and
// the pipe then held exactly the bytes counted. Also for a pipe resized to a
// size that is not the default.
func TestMeasuredCapacityIsFilled(t *testing.T) {
	for _, size := range []int{0, 16 << 10} {
		var accepted, held, calls int
		var last error
		write := func(fd int, b []byte) (int, error) {
			n, err := unix.Write(fd, b)
			calls++
			last = err
			if n > 0 {
				accepted += n
			}
			if errors.Is(err, unix.EAGAIN) {
				held, _ = BufferedFD(fd)
			}
			return n, err
		}
		measured, reported, err := measureCapacity(size, write)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if calls == 0 || !errors.Is(last, unix.EAGAIN) {
			t.Fatalf("size %d: %d writes, the last returned %v; want the fill to end on EAGAIN", size, calls, last)
		}
		if measured != accepted || held != accepted {
			t.Errorf("size %d: measured %d, want the %d bytes writes accepted (%d held in the full pipe)", size, measured, accepted, held)
		}
		if size > 0 && reported != size {
			t.Errorf("size %d: F_GETPIPE_SZ = %d after F_SETPIPE_SZ %d", size, reported, size)
		}
		if measured != reported {
			t.Errorf("size %d: measured %d, F_GETPIPE_SZ says %d", size, measured, reported)
		}
	}
}
