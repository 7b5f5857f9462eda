package sysinfo

import (
	"fmt"
	"time"
)

// Thresholds of [RunStats.Disturbed].
const (
	// MaxStealPercent is the steal time above which a run is disturbed:
	// the hypervisor gave our virtual CPUs' time to other guests.
	MaxStealPercent = 5.0
)

// Run measures what else happened on the machine during a lab's run: steal
// time and load. Start it with [StartRun] and end it with [Run.Stop].
type Run struct {
	r     root
	t0    time.Time
	start cpuTimes
	load1 float64
}

// RunStats is what the machine did during a run.
type RunStats struct {
	// WallNS is the run's length.
	WallNS int64 `json:"wall_ns"`

	// StealPercent is the share of CPU time the hypervisor gave to others
	// while our virtual CPUs wanted to run, over the run (the steal column
	// of /proc/stat). Some hypervisors do not report it: then it is 0.
	StealPercent float64 `json:"steal_percent"`

	// BusyCPUs is how many CPUs were busy on average over the run, with
	// every process on the machine counted (not idle, not iowait, not
	// stolen).
	BusyCPUs float64 `json:"busy_cpus"`

	// Load1Start and Load1End are the 1-minute load averages when the run
	// started and ended. The kernel smooths them over a minute, so for a
	// short run the start value says what else was running.
	Load1Start float64 `json:"load1_start"`
	Load1End   float64 `json:"load1_end"`

	// CPUs is the number of CPUs /proc/stat lists.
	CPUs int `json:"cpus"`
}

// StartRun takes the first snapshot of /proc/stat and /proc/loadavg.
func StartRun() (*Run, error) {
	return startRun(root("/"))
}

func startRun(r root) (*Run, error) {
	run := &Run{r: r}
	var err error
	if run.start, run.load1, err = r.snapshot(); err != nil {
		return nil, fmt.Errorf("start run: %w", err)
	}
	run.t0 = time.Now()
	return run, nil
}

// Stop takes the second snapshot and returns the differences.
func (run *Run) Stop() (RunStats, error) {
	wall := time.Since(run.t0)
	end, load1, err := run.r.snapshot()
	if err != nil {
		return RunStats{}, fmt.Errorf("stop run: %w", err)
	}
	return runStats(run.start, end, run.load1, load1, wall), nil
}

func (r root) snapshot() (cpuTimes, float64, error) {
	t, err := parseProcStat(r.read("proc/stat"))
	if err != nil {
		return cpuTimes{}, 0, err
	}
	l, err := parseLoadavg(r.read("proc/loadavg"))
	if err != nil {
		return cpuTimes{}, 0, err
	}
	return t, l, nil
}

// runStats is the pure part of Stop.
func runStats(a, b cpuTimes, load1a, load1b float64, wall time.Duration) RunStats {
	s := RunStats{WallNS: wall.Nanoseconds(), Load1Start: load1a, Load1End: load1b, CPUs: b.CPUs}
	if b.Total <= a.Total {
		return s // shorter than a tick: nothing to divide
	}
	total := float64(b.Total - a.Total)
	if b.Steal >= a.Steal {
		s.StealPercent = 100 * float64(b.Steal-a.Steal) / total
	}
	idle := float64(0)
	if b.Idle >= a.Idle {
		idle = float64(b.Idle - a.Idle)
	}
	busy := total - idle - float64(b.Steal-min(b.Steal, a.Steal))
	s.BusyCPUs = max(busy, 0) / total * float64(b.CPUs)
	return s
}

// Disturbed reports whether something outside the lab may have bent its
// figures, with the reason in plain words: steal time above
// MaxStealPercent, or a load average above the number of CPUs at the start
// (others were running) or at the end (more runnable tasks than CPUs, which
// may be the lab's own).
func (s RunStats) Disturbed() (bool, string) {
	switch {
	case s.StealPercent > MaxStealPercent:
		return true, fmt.Sprintf("the hypervisor stole %.1f%% of CPU time during the run", s.StealPercent)
	case s.CPUs > 0 && s.Load1Start > float64(s.CPUs):
		return true, fmt.Sprintf("load average %.1f on %d CPUs when the run started: other work competed for the CPUs", s.Load1Start, s.CPUs)
	case s.CPUs > 0 && s.Load1End > float64(s.CPUs):
		return true, fmt.Sprintf("load average %.1f on %d CPUs when the run ended: more runnable tasks than CPUs", s.Load1End, s.CPUs)
	}
	return false, ""
}
