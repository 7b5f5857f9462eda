package procs

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// SpawnStats summarizes how long children took to start.
type SpawnStats struct {
	N      int             `json:"n"`
	Min    time.Duration   `json:"min_ns"`
	Median time.Duration   `json:"median_ns"`
	Max    time.Duration   `json:"max_ns"`
	All    []time.Duration `json:"all_ns"` // in the order measured
}

// NewSpawnStats summarizes durations, such as a lab's own spawn-to-ready
// times, so that they print beside MeasureSpawn's.
func NewSpawnStats(ds []time.Duration) SpawnStats {
	s := SpawnStats{N: len(ds), All: slices.Clone(ds)}
	if len(ds) == 0 {
		return s
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	s.Median = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		s.Median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	return s
}

func (s SpawnStats) String() string {
	return fmt.Sprintf("median %v (min %v, max %v, n=%d)", s.Median.Round(time.Microsecond), s.Min.Round(time.Microsecond), s.Max.Round(time.Microsecond), s.N)
}

// MeasureSpawn starts n children of [BareRole] one after the other and
// times each from just before Start until Wait has reaped it: the floor
// any child of this binary pays (fork, exec, the dynamic loader if the
// binary has one, the Go runtime, every package's initialization) before
// its role does anything. A lab prints it beside its own children's
// spawn-to-ready times, measured in the same run, so the two compare.
func MeasureSpawn(ctx context.Context, n int) (SpawnStats, error) {
	ds := make([]time.Duration, 0, n)
	for i := range n {
		c := Command(ctx, BareRole)
		c.Index = i
		start := time.Now()
		if err := c.Run(); err != nil {
			return SpawnStats{}, fmt.Errorf("measure spawn: %w", err)
		}
		ds = append(ds, time.Since(start))
	}
	return NewSpawnStats(ds), nil
}
