package shm

import (
	"errors"
	"math"
	"testing"
)

// TestSemaphorePostOverflow: a Post at the largest count is refused with
// ErrSemaphoreOverflow and leaves the count as it was (issue 15, finding 9:
// it wrapped to 0 and every count was lost).
func TestSemaphorePostOverflow(t *testing.T) {
	s, err := SemaphoreAt(Local(SemaphoreSize), 0)
	if err != nil {
		t.Fatal(err)
	}
	s.count.Store(math.MaxUint32 - 1)
	if err := s.Post(); err != nil {
		t.Fatalf("Post to MaxUint32: %v", err)
	}
	err = s.Post()
	if !errors.Is(err, ErrSemaphoreOverflow) {
		t.Errorf("Post at MaxUint32 = %v, want ErrSemaphoreOverflow", err)
	}
	if got := s.Value(); got != math.MaxUint32 {
		t.Errorf("count after a refused Post = %d, want %d", got, uint32(math.MaxUint32))
	}
	if !s.TryWait() {
		t.Error("TryWait at MaxUint32 failed")
	}
	if err := s.Post(); err != nil {
		t.Errorf("Post below the maximum: %v", err)
	}
}
