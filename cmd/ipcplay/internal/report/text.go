package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"ipcplay/cmd/ipcplay/internal/base"
)

// WriteText renders r for a person, fitted to width columns: a table too
// wide drops its highest-priority columns first, unless wide is set, and
// one still too wide is printed as a stack of "head: value" lines per row.
func WriteText(w io.Writer, r *Report, width int, wide bool) error {
	bw := &errWriter{w: w}
	para(bw, width, "", r.Title)
	if r.SystemLine != "" {
		para(bw, width, "", "on "+r.SystemLine)
	}
	var details []string
	for _, t := range r.Tables {
		if t.Detail && !wide {
			details = append(details, t.Title)
			continue
		}
		fmt.Fprintln(bw)
		writeTable(bw, t, width, wide)
	}
	if len(details) > 0 {
		fmt.Fprintln(bw)
		para(bw, width, "", fmt.Sprintf("(not shown: %s; --wide, --json or --html shows them)", strings.Join(details, ", ")))
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(bw)
		for _, n := range r.Notes {
			para(bw, width, "note: ", n)
		}
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(bw)
		for _, n := range r.Warnings {
			para(bw, width, "warning: ", n)
		}
	}
	if len(r.Verdict) > 0 {
		fmt.Fprintln(bw)
		for _, v := range r.Verdict {
			para(bw, width, "verdict: ", v)
		}
	}
	return bw.err
}

// para writes text wrapped to width after prefix, continuation lines
// indented by two spaces.
func para(w io.Writer, width int, prefix, text string) {
	if prefix != "" && strings.TrimSpace(prefix) == "" {
		// An indent: continuation lines keep it.
		for _, l := range base.Wrap(text, width-utf8.RuneCountInString(prefix)) {
			fmt.Fprintln(w, prefix+l)
		}
		return
	}
	for i, l := range base.Wrap(prefix+text, width-2) {
		if i == 0 {
			fmt.Fprintln(w, l)
		} else {
			fmt.Fprintln(w, "  "+l)
		}
	}
}

func writeTable(w io.Writer, t *Table, width int, wide bool) {
	if t.Title != "" {
		para(w, width, "", t.Title+":")
	}
	cells := make([][]string, len(t.Rows))
	for i, row := range t.Rows {
		cells[i] = make([]string, len(row))
		for j, v := range row {
			cells[i][j] = format(t.Columns[j].Unit, v)
		}
	}
	heads := make([]string, len(t.Columns))
	widths := make([]int, len(t.Columns))
	for j, c := range t.Columns {
		heads[j] = head(c)
		widths[j] = utf8.RuneCountInString(heads[j])
		for i := range cells {
			widths[j] = max(widths[j], utf8.RuneCountInString(cells[i][j]))
		}
	}
	show := make([]bool, len(t.Columns))
	for j := range show {
		show[j] = true
	}
	total := func() int {
		n, k := 0, 0
		for j, on := range show {
			if on {
				n += widths[j]
				k++
			}
		}
		return n + 2*max(k-1, 0)
	}
	var dropped []string
	for !wide && total() > width {
		j := dropCandidate(t.Columns, show)
		if j < 0 {
			break
		}
		show[j] = false
		dropped = append(dropped, strings.ToLower(heads[j]))
	}
	if total() > width && !wide {
		writeStacked(w, heads, cells, show, width)
	} else {
		writeGrid(w, t.Columns, heads, cells, widths, show)
	}
	for _, n := range t.Notes {
		para(w, width, "  ", n)
	}
	if len(dropped) > 0 {
		slices.Reverse(dropped)
		para(w, width, "  ", fmt.Sprintf("(%s hidden to fit %d columns: --wide or --json shows them)",
			strings.Join(dropped, ", "), width))
	}
}

// dropCandidate is the shown column with the highest Drop, the rightmost
// of equals, or -1 when only columns that are never dropped are left.
func dropCandidate(cols []Column, show []bool) int {
	best := -1
	for j, c := range cols {
		if show[j] && c.Drop > 0 && (best < 0 || c.Drop >= cols[best].Drop) {
			best = j
		}
	}
	return best
}

func writeGrid(w io.Writer, cols []Column, heads []string, cells [][]string, widths []int, show []bool) {
	line := func(row []string) {
		var b strings.Builder
		first := true
		for j, s := range row {
			if !show[j] {
				continue
			}
			if !first {
				b.WriteString("  ")
			}
			first = false
			pad := strings.Repeat(" ", widths[j]-utf8.RuneCountInString(s))
			if numeric(cols[j].Unit) {
				b.WriteString(pad + s)
			} else {
				b.WriteString(s + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(heads)
	for _, row := range cells {
		line(row)
	}
}

// writeStacked prints each row as lines of "head: value", for tables that
// cannot fit side by side.
func writeStacked(w io.Writer, heads []string, cells [][]string, show []bool, width int) {
	hw := 0
	for j, h := range heads {
		if show[j] {
			hw = max(hw, utf8.RuneCountInString(h))
		}
	}
	for i, row := range cells {
		if i > 0 {
			fmt.Fprintln(w)
		}
		for j, s := range row {
			if show[j] {
				h := strings.ToLower(heads[j])
				prefix := fmt.Sprintf("  %-*s  ", hw, h)
				for k, l := range base.Wrap(s, max(10, width-len(prefix))) {
					if k > 0 {
						prefix = strings.Repeat(" ", len(prefix))
					}
					fmt.Fprintln(w, strings.TrimRight(prefix+l, " "))
				}
			}
		}
	}
}

// errWriter keeps the first write error so rendering code can ignore them.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, nil
}
