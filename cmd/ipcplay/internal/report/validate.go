package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// A Doc is a report read back from its JSON document, for programs and
// tests that consume ipcplay's output.
type Doc struct {
	SchemaVersion int            `json:"schema_version"`
	Lab           string         `json:"lab"`
	Title         string         `json:"title"`
	Config        map[string]any `json:"config"`
	Tables        []*DocTable    `json:"tables"`
	Plots         []*Plot        `json:"plots"`
	Verdict       []string       `json:"verdict"`
	Notes         []string       `json:"notes"`
	Warnings      []string       `json:"warnings"`
	System        any            `json:"system"`
	Started       time.Time      `json:"started"`
	ElapsedNS     int64          `json:"elapsed_ns"`
}

// A DocTable is a table read back from JSON: its rows are objects keyed by
// column, numbers as json.Number.
type DocTable struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Columns []struct {
		Key  string `json:"key"`
		Head string `json:"head"`
		Unit Unit   `json:"unit"`
	} `json:"columns"`
	Rows  []map[string]any `json:"rows"`
	Notes []string         `json:"notes"`
}

// Table returns the table called name, or nil.
func (d *Doc) Table(name string) *DocTable {
	for _, t := range d.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Int returns row i's cell in column key as an int64 (for BigInt columns,
// parsed from its string); ok is false for null or a missing cell.
func (t *DocTable) Int(i int, key string) (n int64, ok bool) {
	switch v := t.Rows[i][key].(type) {
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case string:
		var u uint64
		_, err := fmt.Sscan(v, &u)
		return int64(u), err == nil
	}
	return 0, false
}

// Float returns row i's cell in column key as a float64.
func (t *DocTable) Float(i int, key string) (float64, bool) {
	if v, ok := t.Rows[i][key].(json.Number); ok {
		f, err := v.Float64()
		return f, err == nil
	}
	return 0, false
}

// String returns row i's cell in column key as a string ("" for null).
func (t *DocTable) String(i int, key string) string {
	s, _ := t.Rows[i][key].(string)
	return s
}

// Bool returns row i's cell in column key as a bool.
func (t *DocTable) Bool(i int, key string) bool {
	b, _ := t.Rows[i][key].(bool)
	return b
}

// isKey reports whether s is snake_case: a lowercase letter, then
// lowercase letters, digits and underscores.
func isKey(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_')) {
			return false
		}
	}
	return s != ""
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// Validate reads one JSON document and checks it against the schema every
// lab's --json output follows (docs/json.md): the envelope's fields and
// nothing else, snake_case keys, rows with exactly their table's columns,
// and each cell of its column's type (durations as integer nanoseconds
// under keys ending in _ns, integers past 2^53 as decimal strings).
func Validate(data []byte) (*Doc, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var d Doc
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode report: more than one JSON document")
	}
	if d.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("schema_version %d, want %d", d.SchemaVersion, SchemaVersion)
	}
	if d.Lab == "" || d.Title == "" {
		return nil, fmt.Errorf("lab %q, title %q: want both", d.Lab, d.Title)
	}
	if d.Config == nil || d.Tables == nil || d.Plots == nil || d.Verdict == nil || d.Notes == nil || d.Warnings == nil {
		return nil, fmt.Errorf("config, tables, plots, verdict, notes and warnings must be present (empty, not null)")
	}
	for k := range d.Config {
		if !isKey(k) {
			return nil, fmt.Errorf("config key %q is not snake_case", k)
		}
	}
	for _, t := range d.Tables {
		if err := validateTable(t); err != nil {
			return nil, fmt.Errorf("table %s: %w", t.Name, err)
		}
	}
	for _, p := range d.Plots {
		if p.Name == "" || len(p.Lines) == 0 {
			return nil, fmt.Errorf("plot %q: want a name and at least one line", p.Name)
		}
	}
	return &d, nil
}

func validateTable(t *DocTable) error {
	if !isKey(t.Name) {
		return fmt.Errorf("name is not snake_case")
	}
	units := map[string]Unit{}
	for _, c := range t.Columns {
		if !isKey(c.Key) {
			return fmt.Errorf("column key %q is not snake_case", c.Key)
		}
		if c.Unit.IsDuration() != strings.HasSuffix(c.Key, "_ns") {
			return fmt.Errorf("column %s: a duration column's key, and only its, ends in _ns", c.Key)
		}
		units[c.Key] = c.Unit
	}
	for i, row := range t.Rows {
		if len(row) != len(units) {
			return fmt.Errorf("row %d has %d cells for %d columns", i, len(row), len(units))
		}
		for k, v := range row {
			u, ok := units[k]
			if !ok {
				return fmt.Errorf("row %d: cell %q has no column", i, k)
			}
			if err := checkCell(u, v); err != nil {
				return fmt.Errorf("row %d, column %s: %w", i, k, err)
			}
		}
	}
	return nil
}

func checkCell(u Unit, v any) error {
	if v == nil {
		return nil
	}
	isInt := func() bool {
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	}
	switch u {
	case Seconds, Millis, Micros, Nanos, Int, ID, Bytes:
		if !isInt() {
			return fmt.Errorf("%v: want an integer", v)
		}
	case BigInt:
		if s, ok := v.(string); !ok || !isDigits(s) {
			return fmt.Errorf("%v: want a decimal string", v)
		}
	case Bool:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%v: want true or false", v)
		}
	case Text:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%v: want a string", v)
		}
	default:
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%v: want a number", v)
		}
	}
	return nil
}
