package report

import (
	"fmt"
	"ipcplay/procs/sysinfo"
	"time"
)

// SchemaVersion is the version of the JSON document; a breaking change
// bumps it.
const SchemaVersion = 1

// A Report is what one run of a lab found.
type Report struct {
	SchemaVersion int    `json:"schema_version"`
	Lab           string `json:"lab"`   // the command's path: "pipes deadlock"
	Title         string `json:"title"` // one line: what was run
	// Config is the lab's settings, so the document describes itself.
	Config   map[string]any `json:"config"`
	Tables   []*Table       `json:"tables"`
	Plots    []*Plot        `json:"plots"`
	Verdict  []string       `json:"verdict"`  // what the numbers mean
	Notes    []string       `json:"notes"`    // how to read them
	Warnings []string       `json:"warnings"` // what may have disturbed them
	// System is the machine and what it was doing during the run; Write
	// fills it.
	System *System `json:"system"`
	// SystemLine is System in one line for the terminal.
	SystemLine string    `json:"-"`
	Started    time.Time `json:"started"`
	ElapsedNS  int64     `json:"elapsed_ns"`
}

// System is the machine a lab ran on, and what else it did during the run.
type System struct {
	sysinfo.System
	// Run is the steal time and load over the run; nil when they could
	// not be read.
	Run *sysinfo.RunStats `json:"run"`
}

// New returns an empty report of the lab at path.
func New(path, title string) *Report {
	return &Report{
		SchemaVersion: SchemaVersion,
		Lab:           path,
		Title:         title,
		Config:        map[string]any{},
		Tables:        []*Table{},
		Plots:         []*Plot{},
		Verdict:       []string{},
		Notes:         []string{},
		Warnings:      []string{},
		Started:       time.Now(),
	}
}

// Verdictf adds a verdict line.
func (r *Report) Verdictf(format string, args ...any) {
	r.Verdict = append(r.Verdict, fmt.Sprintf(format, args...))
}

// Notef adds a note.
func (r *Report) Notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Warnf adds a warning.
func (r *Report) Warnf(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// Table adds and returns a new table.
func (r *Report) Table(name, title string, cols ...Column) *Table {
	t := &Table{Name: name, Title: title, Columns: cols}
	r.Tables = append(r.Tables, t)
	return t
}

// Plot adds and returns a new plot.
func (r *Report) Plot(name, title string, x, y Axis) *Plot {
	p := &Plot{Name: name, Title: title, X: x, Y: y}
	r.Plots = append(r.Plots, p)
	return p
}

// Lookup returns the table called name, or nil.
func (r *Report) Lookup(name string) *Table {
	for _, t := range r.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// A Unit says what a column's cells are and how to show them.
type Unit string

// The units. Duration units take time.Duration cells; the rest take the
// Go types their comments name.
const (
	Text    Unit = ""      // string (or anything, printed with %v)
	Int     Unit = "count" // int or int64, shown with separators
	ID      Unit = "id"    // int identifiers (pids, slots), shown plain
	BigInt  Unit = "int"   // uint64, a decimal string in JSON
	Bytes   Unit = "bytes" // int or int64 bytes: 64KiB, 65,537B
	Seconds Unit = "s"     // time.Duration shown in seconds
	Millis  Unit = "ms"    // time.Duration shown in milliseconds
	Micros  Unit = "µs"    // time.Duration shown in microseconds
	Nanos   Unit = "ns"    // time.Duration shown in nanoseconds
	Ratio   Unit = "x"     // float64 shown as 1.23x
	Percent Unit = "%"     // float64 percent shown as 12.3%
	Bool    Unit = "bool"  // bool shown as yes/no
	MBps    Unit = "MB/s"  // float64 megabytes (10^6) a second
	GBps    Unit = "GB/s"  // float64 gigabytes (10^9) a second
	PerSec  Unit = "/s"    // float64 events a second, shown 1.2M
	Float   Unit = "num"   // float64 with three significant digits
)

// IsDuration reports whether u takes time.Duration cells.
func (u Unit) IsDuration() bool {
	return u == Seconds || u == Millis || u == Micros || u == Nanos
}

// A Column is one column of a table.
type Column struct {
	Key  string `json:"key"`  // snake_case; durations end in _ns
	Head string `json:"head"` // header for the terminal, without unit
	Unit Unit   `json:"unit"`
	// Drop is the column's priority when the terminal is too narrow:
	// 0 is never dropped, and higher numbers are dropped first.
	Drop int `json:"-"`
}

// Col returns a column that is never dropped.
func Col(key, head string, u Unit) Column { return Column{Key: key, Head: head, Unit: u} }

// Opt returns a column dropped at priority drop (>= 1) when space is short.
func Opt(key, head string, u Unit, drop int) Column {
	return Column{Key: key, Head: head, Unit: u, Drop: drop}
}

// A Table is a titled grid of typed cells.
type Table struct {
	Name    string   `json:"name"`
	Title   string   `json:"title"`
	Columns []Column `json:"columns"`
	Rows    [][]any  `json:"-"`
	Notes   []string `json:"notes"`
	// Detail marks a table of fine detail: the terminal shows it only
	// with --wide; JSON and HTML always have it.
	Detail bool `json:"-"`

	err error // the first malformed row, reported by Write
}

// Row appends a row; it must have one cell per column. A row of the wrong
// length is kept out of the table and makes Write fail.
func (t *Table) Row(cells ...any) {
	if len(cells) != len(t.Columns) {
		if t.err == nil {
			t.err = fmt.Errorf("table %s: row %d has %d cells for %d columns", t.Name, len(t.Rows), len(cells), len(t.Columns))
		}
		return
	}
	t.Rows = append(t.Rows, cells)
}

// Notef adds a note printed under the table.
func (t *Table) Notef(format string, args ...any) {
	t.Notes = append(t.Notes, fmt.Sprintf(format, args...))
}

// Get returns the cell of row i in the column with key, or nil.
func (t *Table) Get(i int, key string) any {
	for j, c := range t.Columns {
		if c.Key == key {
			return t.Rows[i][j]
		}
	}
	return nil
}

// An Axis is one axis of a plot.
type Axis struct {
	Label string `json:"label"`
	Unit  string `json:"unit"`
	Log   bool   `json:"log"`
}

// A Plot is a set of lines over two axes, drawn as one SVG.
type Plot struct {
	Name  string  `json:"name"` // the SVG file's name, without .svg
	Title string  `json:"title"`
	X     Axis    `json:"x"`
	Y     Axis    `json:"y"`
	Lines []*Line `json:"lines"`
}

// A Line is one series of a plot.
type Line struct {
	Label string `json:"label"`
	// Dashed tells a line apart from the solid ones: ipcplay draws
	// goroutine lines dashed and process lines solid.
	Dashed bool    `json:"dashed"`
	Points []Point `json:"points"`
}

// A Point is one (x, y) of a line.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// Line adds and returns a new line.
func (p *Plot) Line(label string, dashed bool) *Line {
	l := &Line{Label: label, Dashed: dashed}
	p.Lines = append(p.Lines, l)
	return l
}

// Add appends a point.
func (l *Line) Add(x, y float64) { l.Points = append(l.Points, Point{x, y}) }
