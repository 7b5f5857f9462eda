package pool

import (
	"testing"
	"time"
)

// TestSizerBeforeFirstAnswer: before any answer the dispatcher fills
// every worker at once, Workers x InFlight chunks plus one pending,
// without reading the clock between them. Doubling at every chunk gave 4
// workers chunks of 1 to 256 tasks of unknown cost (one worker got 16 and
// then 256: with tasks of 50 ms, 13.6 s of work where the whole map of 600
// was 7.5 s per worker). Doubling once per round of the workers keeps
// every worker's share before the first answer within a few tasks.
func TestSizerBeforeFirstAnswer(t *testing.T) {
	for _, workers := range []int{1, 2, 4, 8} {
		s := newSizer(MapOptions{}, workers)
		perWorker := make([]int, workers)
		const inFlight = DefaultInFlight
		for i := range workers*inFlight + 1 {
			n := s.size
			perWorker[i%workers] += n
			s.submitted(n)
		}
		for w, n := range perWorker {
			if n > 1<<(inFlight+1) {
				t.Errorf("workers=%d: worker %d got %d tasks of unknown cost before any answer", workers, w, n)
			}
		}
	}
	// An answer of slow tasks shrinks the chunk being built at once.
	s := newSizer(MapOptions{}, 2)
	for range 5 {
		s.submitted(s.size)
	}
	s.answered(1, 50*chunkTarget)
	if s.size != 1 {
		t.Errorf("size %d after an answer of one task of %v, want 1", s.size, 50*chunkTarget)
	}
	// After the first answer the size still grows to the target.
	s = newSizer(MapOptions{}, 4)
	s.submitted(s.size)
	s.answered(1, chunkTarget/1000)
	for range 20 {
		s.submitted(s.size)
	}
	if s.size < 900 {
		t.Errorf("size %d after 20 chunks of tasks of %v, want about %d", s.size, chunkTarget/1000, 1000)
	}
}

// TestSizerOutgrowsTheRoundTrip: the first chunks hold a task or two, and
// their time is mostly the round trip (a millisecond, where a task takes a
// microsecond). An average per chunk kept that in the estimate for dozens
// of answers, at chunks a tenth of the target; weighted by tasks, it fades
// as soon as larger chunks come back.
func TestSizerOutgrowsTheRoundTrip(t *testing.T) {
	const task, roundTrip = time.Microsecond, time.Millisecond
	want := int(chunkTarget / task)
	s := newSizer(MapOptions{}, 2)
	answers := 0
	for n := s.size; s.size < want/2; n = s.size {
		s.submitted(n)
		s.answered(n, roundTrip+time.Duration(n)*task)
		if answers++; answers > 20 {
			t.Fatalf("size %d after %d answers, want about %d", s.size, answers, want)
		}
	}
}
