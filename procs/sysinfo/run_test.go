package sysinfo

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunStats(t *testing.T) {
	a := cpuTimes{Total: 1000, Idle: 400, Steal: 10, CPUs: 2}
	b := cpuTimes{Total: 2000, Idle: 900, Steal: 110, CPUs: 2}
	s := runStats(a, b, 0.5, 1.5, time.Second)
	// 1000 ticks: 500 idle, 100 stolen, 400 busy on 2 CPUs.
	if s.StealPercent != 10 || math.Abs(s.BusyCPUs-0.8) > 1e-9 || s.CPUs != 2 || s.WallNS != 1e9 || s.Load1Start != 0.5 || s.Load1End != 1.5 {
		t.Fatalf("runStats = %+v; want 10%% steal, 0.8 busy CPUs", s)
	}
	if s := runStats(a, a, 1, 1, time.Millisecond); s.StealPercent != 0 || s.BusyCPUs != 0 {
		t.Fatalf("runStats(no ticks) = %+v, want zero steal and busy", s)
	}
}

func TestDisturbed(t *testing.T) {
	tests := []struct {
		name   string
		s      RunStats
		want   bool
		reason string
	}{
		{"quiet", RunStats{StealPercent: 1, Load1Start: 0.3, Load1End: 1.9, CPUs: 2}, false, ""},
		{"steal", RunStats{StealPercent: 12.5, CPUs: 2}, true, "stole 12.5%"},
		{"busy-before", RunStats{Load1Start: 16.2, Load1End: 17, CPUs: 2}, true, "load average 16.2 on 2 CPUs when the run started"},
		{"busy-after", RunStats{Load1Start: 0.1, Load1End: 4.5, CPUs: 2}, true, "load average 4.5 on 2 CPUs when the run ended"},
	}
	for _, tt := range tests {
		t.Run("case="+tt.name, func(t *testing.T) {
			got, reason := tt.s.Disturbed()
			if got != tt.want || !strings.Contains(reason, tt.reason) || (tt.reason == "" && reason != "") {
				t.Fatalf("Disturbed() = %v, %q; want %v, %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}

// TestRunReadsFiles runs StartRun and Stop against a fixture /proc whose
// counters move between the two snapshots.
func TestRunReadsFiles(t *testing.T) {
	r := tree(t, map[string]string{
		"proc/stat":    "cpu  100 0 100 700 0 0 0 100 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\n",
		"proc/loadavg": "0.50 0.40 0.30 1/100 42\n",
	})
	run, err := startRun(r)
	if err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(string(r), p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/stat", "cpu  150 0 150 700 0 0 0 200 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\n")
	write("proc/loadavg", "3.00 1.00 0.50 3/100 43\n")
	s, err := run.Stop()
	if err != nil {
		t.Fatal(err)
	}
	// 200 ticks: 100 stolen, 100 busy, on 1 CPU.
	if s.StealPercent != 50 || s.BusyCPUs != 0.5 || s.Load1Start != 0.5 || s.Load1End != 3 || s.CPUs != 1 {
		t.Fatalf("Stop = %+v; want 50%% steal, 0.5 busy CPUs, load 0.5 then 3 on 1 CPU", s)
	}
	if d, reason := s.Disturbed(); !d || !strings.Contains(reason, "stole 50.0%") {
		t.Fatalf("Disturbed() = %v, %q; want the steal named", d, reason)
	}
	write("proc/stat", "garbage")
	if _, err := run.Stop(); err == nil || !strings.HasPrefix(err.Error(), "stop run: parse /proc/stat") {
		t.Fatalf("Stop on a bad /proc/stat = %v, want a parse error", err)
	}
	if _, err := startRun(root(t.TempDir())); err == nil {
		t.Fatal("startRun without /proc/stat = nil error, want one")
	}
}

func TestRunLive(t *testing.T) {
	run, err := StartRun()
	if err != nil {
		t.Fatal(err)
	}
	s, err := run.Stop()
	if err != nil {
		t.Fatal(err)
	}
	d, reason := s.Disturbed()
	t.Logf("%+v disturbed=%v %s", s, d, reason)
	if s.CPUs < 1 || s.StealPercent < 0 || s.StealPercent > 100 || s.BusyCPUs < 0 || s.BusyCPUs > float64(s.CPUs) {
		t.Fatalf("Stop = %+v: figures out of range", s)
	}
}
