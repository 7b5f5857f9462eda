package pool

import (
	"fmt"
	"syscall"
	"time"
)

// A Kill is a worker SIGKILLed from outside during a map, by KillBusy.
type Kill struct {
	PID int
	At  time.Time // just before the signal was sent
}

// KillBusy SIGKILLs the first worker (in slot order) that holds tasks, so
// that its death costs the map work to re-send, and returns it. It
// reports false if no worker holds tasks at the moment. Call it during a
// map, for instance from MapUnordered's callback.
func (p *Pool) KillBusy() (Kill, bool, error) {
	busy := p.Busy()
	if len(busy) == 0 {
		return Kill{}, false, nil
	}
	k := Kill{PID: busy[0], At: time.Now()}
	if err := syscall.Kill(k.PID, syscall.SIGKILL); err != nil {
		return k, false, fmt.Errorf("kill pool worker %d: %w", k.PID, err)
	}
	return k, true, nil
}

// A Recovery is what one killed worker cost a map, measured from the
// SIGKILL.
type Recovery struct {
	Kill
	// Handled is the time until the map took up the death (Event.Time):
	// the socket's EOF seen and the worker reaped. Its tasks are queued
	// again and a replacement is started right after.
	Handled time.Duration
	// Redone is the time until the last of the tasks it held came back
	// from another worker: the map no longer waits for anything the dead
	// worker had. It is Handled when it held nothing the map still
	// needed.
	Redone time.Duration
	// Resent is how many of its tasks were sent again.
	Resent int
	// Replacement is the pid of the worker started in its place.
	Replacement int
}

// RecoveryOf measures the recovery from k, given the pool's events (see
// Pool.Events) and done, which returns when the result of task i arrived.
// It reports false if no event records k's death.
func RecoveryOf(events []Event, k Kill, done func(i int) time.Time) (Recovery, bool) {
	for _, ev := range events {
		if ev.PID != k.PID || ev.Time.Before(k.At) {
			continue
		}
		r := Recovery{Kill: k, Handled: ev.Time.Sub(k.At), Resent: len(ev.Resent), Replacement: ev.Replacement}
		r.Redone = r.Handled
		for _, i := range ev.Resent {
			if d := done(i).Sub(k.At); d > r.Redone {
				r.Redone = d
			}
		}
		return r, true
	}
	return Recovery{}, false
}
