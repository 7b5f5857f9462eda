//go:build !race

package shmlab

const raceEnabled = false
