package benchlab

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// perfLoops is the number of round trips perf bench sched pipe runs.
const perfLoops = 20_000

// perfCheck is our pipe round trip run back to back with perf bench sched
// pipe (before and after ours), at the same placement.
type perfCheck struct {
	Skip    string          // why it did not run
	Command string          // the perf command line
	Perf    []time.Duration // perf's mean round trip, before and after ours
	Ours    *Cell           // our pipe cell at perf's message size
}

var usecsPerOp = regexp.MustCompile(`([0-9.]+)\s+usecs/op`)

// checkPerf runs the comparison; a machine without perf gets a reason.
func checkPerf(ctx context.Context, cfg Config) *perfCheck {
	pc := &perfCheck{}
	path, err := exec.LookPath("perf")
	if err != nil {
		pc.Skip = "perf is not installed (linux-perf / linux-tools)"
		return pc
	}
	args := []string{path, "bench", "sched", "pipe", "-l", strconv.Itoa(perfLoops)}
	switch cfg.Placement.Name {
	case "same-cpu":
		args = append([]string{"taskset", "-c", strconv.Itoa(cfg.Placement.Self)}, args...)
	case "two-cpus":
		args = append([]string{"taskset", "-c", fmt.Sprintf("%d,%d", cfg.Placement.Self, cfg.Placement.Other)}, args...)
	}
	pc.Command = strings.Join(args, " ")
	runPerf := func() error {
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", pc.Command, err, lastLine(out))
		}
		m := usecsPerOp.FindSubmatch(out)
		if m == nil {
			return fmt.Errorf("%s: no usecs/op in its output: %s", pc.Command, lastLine(out))
		}
		us, _ := strconv.ParseFloat(string(m[1]), 64)
		pc.Perf = append(pc.Perf, time.Duration(us*1e3))
		return nil
	}
	if err := runPerf(); err != nil {
		pc.Skip = err.Error()
		return pc
	}
	pipe, _ := lookupMech("pipe")
	c, err := measure(ctx, pipe, 4, cfg.Placement, Options{Budget: cfg.Budget, MinIters: perfLoops})
	if err != nil {
		pc.Skip = err.Error()
		return pc
	}
	pc.Ours = c
	if err := runPerf(); err != nil {
		pc.Skip = err.Error()
	}
	return pc
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func (pc *perfCheck) report(r *report.Report) {
	if pc.Skip != "" || pc.Ours == nil || len(pc.Perf) == 0 {
		r.Notef("--check-perf skipped: %s", pc.Skip)
		return
	}
	t := r.Table("check_perf", "pipe round trip against perf bench sched pipe (4 bytes)",
		report.Col("run", "run", report.Text),
		report.Col("mean_ns", "mean", report.Micros),
		report.Opt("p50_ns", "p50", report.Micros, 1),
		report.Col("vs_perf", "vs perf", report.Ratio),
	)
	var sum time.Duration
	for _, d := range pc.Perf {
		sum += d
	}
	perfMean := sum / time.Duration(len(pc.Perf))
	for i, d := range pc.Perf {
		t.Row(fmt.Sprintf("perf, %s", []string{"before", "after"}[i]), d, nil, nil)
	}
	ours := pc.Ours.Lat.Mean()
	ratio := float64(ours) / float64(perfMean)
	t.Row("ipcplay pipe", ours, pc.Ours.Lat.Quantile(0.5), ratio)
	t.Notef("perf's figure is its total time over %s round trips, a mean; ours is the mean of %s timed round trips. Command: %s.", base.Count(perfLoops), base.Count(pc.Ours.Lat.N()), pc.Command)
	if pc.Ours.Placement == "two-cpus" {
		t.Notef("taskset lets perf's two processes share the two CPUs; it does not put one on each, as ours are.")
	}
	r.Verdictf("our pipe round trip is %.2fx perf bench sched pipe's (%s against %s, back to back, %s)", ratio, base.Human(ours), base.Human(perfMean), pc.Ours.Placement)
}
