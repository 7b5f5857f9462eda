package shm

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestBarrierCancelRacesLastArrival: one party's context ends just as the
// last party arrives. Either the round completes and both pass, or the
// waiting party broke the barrier first and both fail; never one of each,
// and a completed round leaves the barrier whole for the next (issue 15,
// finding 11).
func TestBarrierCancelRacesLastArrival(t *testing.T) {
	bar, err := MakeBarrier(Local(BarrierSize), 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	rounds := 300
	if testing.Short() {
		rounds = 100
	}
	var passed, broke int
	for i := range rounds {
		// The waiter's deadline and the last arrival are set for the
		// same instant, shifted a little each round to sweep the window.
		at := time.Now().Add(2*time.Millisecond + time.Duration(i%7)*50*time.Microsecond)
		ctx, cancel := context.WithDeadline(t.Context(), at)
		var aErr error
		var wg sync.WaitGroup
		wg.Go(func() { _, aErr = bar.Wait(ctx) })
		time.Sleep(time.Until(at))
		_, bErr := bar.Wait(t.Context())
		wg.Wait()
		cancel()
		switch {
		case aErr == nil && bErr == nil:
			passed++
		case aErr != nil && bErr != nil:
			broke++
			if !errors.Is(aErr, ErrBrokenBarrier) || !errors.Is(bErr, ErrBrokenBarrier) {
				t.Fatalf("round %d: errors %v and %v, want ErrBrokenBarrier", i, aErr, bErr)
			}
			bar.Reset()
		default:
			t.Fatalf("round %d: the waiter got %v and the last arrival %v: one passed, one did not", i, aErr, bErr)
		}
	}
	t.Logf("%d rounds passed, %d broke", passed, broke)
}
