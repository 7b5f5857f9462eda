//go:build linux

package main

import (
	"strings"
	"testing"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// labRuns are small runs of every lab, in the default output's shape.
var labRuns = [][]string{
	{"primes", "--procs", "2", "91", "100000007", "1000036000099"},
	{"queue", "--messages", "5000"},
	{"queue", "--lab", "poison-pill", "--messages", "2000", "--watchdog", "300ms"},
	{"queue", "--transport", "shm", "--messages", "5000", "--pings", "100", "--repeat", "1"},
	{"factor", "--upto", "20000", "--procs", "2"},
	{"pipes", "deadlock", "--bytes", "32K,65K", "--timeout", "500ms"},
	{"pipes", "capacity"},
	{"pipes", "bench", "--rounds", "2000", "--bytes", "4M", "--write", "64K"},
	{"shm", "counter", "--procs", "2", "--increments", "20000"},
	{"shm", "square", "1", "2", "3"},
	{"shm", "bench", "--size", "4M", "--rounds", "2"},
	{"shm", "cond", "--items", "5000"},
	{"shm", "recovery", "--kill", "3"},
	{"queue", "--messages", "5000", "--repeat", "1", "--kill", "3"},
	{"factor", "--upto", "20000", "--procs", "2", "--kill", "3"},
	{"manager", "--procs", "2", "--ops", "200"},
	{"bench", "--mech", "pipe,unix,chan", "--size", "64,4K", "--seconds", "200ms"},
	{"doctor"},
	{"chaos", "--kills", "6", "--seed", "1"},
}

// TestLabsFit80Columns runs every lab as a user would, with stdout not a
// terminal, and checks that every line fits 80 columns and ends clean.
func TestLabsFit80Columns(t *testing.T) {
	for _, args := range labRuns {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runHere(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, l := range strings.Split(stdout, "\n") {
				if n := len([]rune(l)); n > 80 {
					t.Errorf("line of %d columns: %q", n, l)
				}
				if strings.HasSuffix(l, " ") {
					t.Errorf("line ends in a space: %q", l)
				}
			}
			if !strings.Contains(stdout, "\nverdict: ") {
				t.Errorf("no verdict line:\n%s", stdout)
			}
		})
	}
}

// TestLabsJSONSchema checks every lab's --json against the one schema.
func TestLabsJSONSchema(t *testing.T) {
	for _, args := range labRuns {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runHere(t, append(args, "--json")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			doc, err := report.Validate([]byte(stdout))
			if err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			if doc.Lab != args[0] && !strings.HasPrefix(doc.Lab, args[0]+" ") {
				t.Errorf("lab = %q, want %q", doc.Lab, args[0])
			}
			if len(doc.Verdict) == 0 {
				t.Errorf("no verdict in the JSON")
			}
		})
	}
}

// TestHelpFits80Columns prints the help of every command and subcommand:
// each ends in a newline, fits 80 columns, and shows examples.
func TestHelpFits80Columns(t *testing.T) {
	var walk func(path []string, cmds []*base.Command)
	walk = func(path []string, cmds []*base.Command) {
		for _, c := range cmds {
			p := append(append([]string{}, path...), c.Name())
			walk(p, c.Commands)
			code, stdout, stderr := runHere(t, append([]string{"help"}, p...)...)
			if code != 0 || stderr != "" {
				t.Errorf("help %v: exit %d, stderr %q", p, code, stderr)
			}
			if !strings.HasSuffix(stdout, "\n") {
				t.Errorf("help %v does not end in a newline", p)
			}
			for _, l := range strings.Split(stdout, "\n") {
				if n := len([]rune(l)); n > 80 {
					t.Errorf("help %v: line of %d columns: %q", p, n, l)
				}
			}
			if c.Run != nil && !strings.Contains(stdout, "  ipcplay ") {
				t.Errorf("help %v shows no example", p)
			}
		}
	}
	walk(nil, program().Commands)
}
