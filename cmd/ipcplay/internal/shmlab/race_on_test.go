//go:build race

package shmlab

// raceEnabled: the race detector slows every shared access about tenfold.
const raceEnabled = true
