package base

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Wrap breaks text into lines of at most width columns, at spaces. A word
// longer than width gets a line of its own.
func Wrap(text string, width int) []string {
	var lines []string
	var cur strings.Builder
	n := 0
	for _, w := range strings.Fields(text) {
		wn := utf8.RuneCountInString(w)
		if n > 0 && n+1+wn > width {
			lines = append(lines, cur.String())
			cur.Reset()
			n = 0
		}
		if n > 0 {
			cur.WriteByte(' ')
			n++
		}
		cur.WriteString(w)
		n += wn
	}
	if n > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// writeIndented writes text wrapped to width after prefix, continuation
// lines indented as far as prefix is long.
func writeIndented(w io.Writer, width int, prefix, text string) {
	pad := strings.Repeat(" ", utf8.RuneCountInString(prefix))
	for i, l := range Wrap(text, max(20, width-len(pad))) {
		if i == 0 {
			fmt.Fprintf(w, "%s%s\n", prefix, l)
		} else {
			fmt.Fprintf(w, "%s%s\n", pad, l)
		}
	}
}

// writeText writes help text: paragraphs wrapped to width, lines that
// start with a space (examples, lists) as they are.
func writeText(w io.Writer, width int, text string) {
	var para []string
	flush := func() {
		if len(para) > 0 {
			for _, l := range Wrap(strings.Join(para, " "), width) {
				fmt.Fprintln(w, l)
			}
			para = nil
		}
	}
	for _, l := range strings.Split(strings.Trim(text, "\n"), "\n") {
		switch {
		case strings.TrimSpace(l) == "":
			flush()
			fmt.Fprintln(w)
		case strings.HasPrefix(l, " "):
			flush()
			fmt.Fprintln(w, l)
		default:
			para = append(para, l)
		}
	}
	flush()
}
