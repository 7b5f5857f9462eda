package base

import (
	"flag"
	"fmt"
	"runtime"
	"time"
)

// Output holds the output flags every lab has: --json, --svg, --html and
// --wide. Declare them with AddOutputFlags.
type Output struct {
	JSON bool   // one JSON document on stdout instead of tables
	SVG  string // a directory to write one SVG per plot into
	HTML string // a file to write one self-contained HTML page into
	Wide bool   // keep every column even when the table is too wide
}

// AddOutputFlags declares --json, --svg, --html and --wide on fs.
func AddOutputFlags(fs *flag.FlagSet) *Output {
	o := new(Output)
	fs.BoolVar(&o.JSON, "json", false, "print one JSON document (schema: docs/json.md) instead of tables")
	fs.StringVar(&o.SVG, "svg", "", "also write the plots as SVG files into `DIR`")
	fs.StringVar(&o.HTML, "html", "", "also write a self-contained HTML page to `FILE`")
	fs.BoolVar(&o.Wide, "wide", false, "show every column even where the table is wider than the terminal")
	return o
}

// MaxProcs bounds --procs in every lab: more workers than this is a
// mistake, not an experiment (starting them alone would take seconds).
const MaxProcs = 256

// ProcsFlag declares --procs, the number of workers, 1..MaxProcs.
func ProcsFlag(fs *flag.FlagSet, def int) *int {
	return IntFlag(fs, "procs", def, 1, MaxProcs, "workers: child processes, and as many goroutines")
}

// DefaultProcs is the default worker count of labs that scale with the
// machine: its CPU count, at least 2 and at most 8.
func DefaultProcs() int { return min(max(runtime.NumCPU(), 2), 8) }

// SecondsFlag declares --seconds, how long each measurement runs.
func SecondsFlag(fs *flag.FlagSet, def time.Duration) *time.Duration {
	return DurationFlag(fs, "seconds", def, 10*time.Millisecond, time.Hour,
		"how long each measurement runs")
}

// Mode says where a lab's workers run.
type Mode string

// The modes every lab uses, one spelling each.
const (
	Procs      Mode = "procs"      // child processes
	Goroutines Mode = "goroutines" // goroutines in this process
	Both       Mode = "both"       // both, interleaved in one run
)

// Modes returns the modes m stands for, processes first.
func (m Mode) Modes() []Mode {
	if m == Both {
		return []Mode{Procs, Goroutines}
	}
	return []Mode{m}
}

// ModeFlag declares --mode: procs, goroutines or both.
func ModeFlag(fs *flag.FlagSet, def Mode) *Mode {
	v := &modeValue{m: def}
	fs.Var(v, "mode", "where the workers run: procs, goroutines or both")
	return &v.m
}

type modeValue struct{ m Mode }

func (v *modeValue) String() string { return string(v.m) }
func (v *modeValue) kind() string   { return "mode" }
func (v *modeValue) Set(s string) error {
	switch Mode(s) {
	case Procs, Goroutines, Both:
		v.m = Mode(s)
		return nil
	}
	if g := Suggest(s, []string{"procs", "goroutines", "both"}); g != "" {
		return fmt.Errorf("did you mean %q? want procs, goroutines or both", g)
	}
	return fmt.Errorf("want procs, goroutines or both")
}
