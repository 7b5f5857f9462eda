package chaos

import (
	"time"
)

// pollEvery is how often the killer looks at an iteration's progress: the
// progress of the pool and the queue is counted in this process and that
// of the shm loop in shared memory, so one way of waiting serves all three.
const pollEvery = 200 * time.Microsecond

// killLoop runs an iteration's kills in order: for each it waits until
// progress() reaches the kill's After, then calls fire, which sends the
// signal. It returns when every kill has been fired or stop is closed
// (the iteration ended, or its deadline passed): the kills not fired by
// then are missed.
func killLoop(stop <-chan struct{}, kills []Kill, progress func() int64, fire func(i int, k Kill)) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for i, k := range kills {
		for progress() < int64(k.After) {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		fire(i, k)
	}
}
