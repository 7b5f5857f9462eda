//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// env is what a command talks to: its output streams, and whether a person
// is watching stderr (which is when progress is shown).
type env struct {
	stdout, stderr io.Writer
	progress       bool // stderr is a terminal
}

func newEnv(stdout, stderr *os.File) *env {
	return &env{stdout: stdout, stderr: stderr, progress: isTerminal(stderr)}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// table writes aligned columns to w. Call flush when done.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// system describes the machine a result was measured on, so that a JSON
// document describes itself.
type system struct {
	GoVersion  string `json:"go_version"`
	Kernel     string `json:"kernel"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

func thisSystem() system {
	var u unix.Utsname
	kernel := "unknown"
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	return system{
		GoVersion:  runtime.Version(),
		Kernel:     kernel,
		Arch:       runtime.GOARCH,
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
}

func (s system) String() string {
	return fmt.Sprintf("Linux %s, %s, %s, %d CPUs", s.Kernel, s.Arch, s.GoVersion, s.CPUs)
}

// progressLine redraws one status line on stderr; it does nothing unless
// stderr is a terminal.
type progressLine struct {
	w    io.Writer
	on   bool
	last time.Time
	used bool
}

func (e *env) newProgress(enabled bool) *progressLine {
	return &progressLine{w: e.stderr, on: enabled && e.progress}
}

func (p *progressLine) set(format string, args ...any) {
	if !p.on {
		return
	}
	p.used = true
	fmt.Fprintf(p.w, "\r\x1b[K"+format, args...)
}

// done clears the line.
func (p *progressLine) done() {
	if p.on && p.used {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.used = false
	}
}

// seconds formats a duration in seconds with a precision that suits it.
func seconds(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s >= 10:
		return fmt.Sprintf("%.2f", s)
	case s >= 0.01:
		return fmt.Sprintf("%.4f", s)
	default:
		return fmt.Sprintf("%.6f", s)
	}
}

// millis formats a duration in milliseconds.
func millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f", ms)
	case ms >= 1:
		return fmt.Sprintf("%.2f", ms)
	default:
		return fmt.Sprintf("%.3f", ms)
	}
}

// count formats a large count with thousands separators.
func count(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// micros formats d in microseconds.
func micros(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Microsecond)) }

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}
