package pool

import (
	"testing"
	"time"
)

func TestRecoveryOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	arrived := map[int]time.Time{4: at(30), 5: at(70), 6: at(50)}
	done := func(i int) time.Time { return arrived[i] }
	events := []Event{
		{PID: 7, Time: at(-5)},                                        // an earlier death of the same pid number
		{PID: 8, Time: at(2), Resent: []int{1}},                       // another worker
		{PID: 7, Time: at(3), Resent: []int{4, 5, 6}, Replacement: 9}, // the kill's
	}
	r, ok := RecoveryOf(events, Kill{PID: 7, At: t0}, done)
	if !ok || r.Handled != 3*time.Millisecond || r.Redone != 70*time.Millisecond || r.Resent != 3 || r.Replacement != 9 {
		t.Errorf("RecoveryOf = %+v, %v; want handled 3ms, redone 70ms, 3 resent, replacement 9", r, ok)
	}
	r, ok = RecoveryOf(events[2:], Kill{PID: 7, At: t0}, func(int) time.Time { return at(1) })
	if !ok || r.Redone != r.Handled {
		t.Errorf("tasks back before the death was handled: redone %v, handled %v; want equal", r.Redone, r.Handled)
	}
	if _, ok := RecoveryOf(events, Kill{PID: 10, At: t0}, done); ok {
		t.Errorf("RecoveryOf of a pid with no event reported one")
	}
}
