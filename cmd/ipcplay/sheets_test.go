//go:build linux

package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sheetCommand is the command a lab sheet's excerpt came from, written in
// the sheet as <!-- excerpt: ipcplay ARGS -->.
var update = flag.Bool("update", false, "rewrite the lab sheets' excerpts with what the labs print now")

var sheetCommand = regexp.MustCompile(`<!-- excerpt: ipcplay (.*?) -->\s*` + "```text\n" + `((?s:.*?))` + "```")

// TestLabSheets keeps docs/labs/*.md true: each sheet's excerpt is run
// again, and its tables must have the same titles as the real output, the
// columns it shows among the real ones in the same order, and verdicts that
// open with the same words.
func TestLabSheets(t *testing.T) {
	sheets, err := filepath.Glob("../../docs/labs/*.md")
	if err != nil || len(sheets) == 0 {
		t.Fatalf("no lab sheets: %v", err)
	}
	for _, sheet := range sheets {
		t.Run(filepath.Base(sheet), func(t *testing.T) {
			b, err := os.ReadFile(sheet)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "<!-- excerpt: none -->") {
				t.Skip("the sheet shows no report: its commands print no tables")
			}
			m := sheetCommand.FindAllStringSubmatch(string(b), -1)
			if len(m) == 0 {
				t.Fatalf("no <!-- excerpt: ipcplay ... --> before a text block")
			}
			if *update {
				updateSheet(t, sheet, string(b))
				return
			}
			for _, x := range m {
				args, excerpt := strings.Fields(x[1]), x[2]
				// --wide: which columns fit depends on the widths of
				// this run's numbers; the sheet's must be among them.
				code, stdout, stderr := runHere(t, append(args, "--wide")...)
				if code != 0 {
					t.Fatalf("ipcplay %s: exit %d: %s", x[1], code, stderr)
				}
				compareExcerpt(t, x[1], excerpt, stdout)
			}
		})
	}
}

// tableHeads maps each table title ("results:") to its header's columns.
func tableHeads(out string) map[string]string {
	heads := map[string]string{}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		l := lines[i]
		if strings.HasSuffix(l, ":") && !strings.HasPrefix(l, " ") && l != "" {
			heads[l] = strings.Join(strings.Fields(lines[i+1]), " ")
		}
	}
	return heads
}

// verdictOpenings are the first four words of each verdict.
func verdictOpenings(out string) []string {
	var vs []string
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "verdict: "); ok {
			w := strings.Fields(rest)
			vs = append(vs, strings.Join(w[:min(4, len(w))], " "))
		}
	}
	return vs
}

func compareExcerpt(t *testing.T, cmd, excerpt, real string) {
	t.Helper()
	want, got := tableHeads(excerpt), tableHeads(real)
	if len(want) == 0 {
		t.Errorf("ipcplay %s: the excerpt shows no table", cmd)
	}
	for title, cols := range want {
		if !subsequence(strings.Fields(cols), strings.Fields(got[title])) {
			t.Errorf("ipcplay %s: table %q\nsheet: %s\nreal:  %s", cmd, title, cols, got[title])
		}
	}
	wv, gv := verdictOpenings(excerpt), verdictOpenings(real)
	if strings.Join(wv, "|") != strings.Join(gv, "|") {
		t.Errorf("ipcplay %s: verdicts open\nsheet: %q\nreal:  %q", cmd, wv, gv)
	}
}

// subsequence reports whether every word of sub appears in all, in order.
func subsequence(sub, all []string) bool {
	i := 0
	for _, w := range all {
		if i < len(sub) && sub[i] == w {
			i++
		}
	}
	return i == len(sub)
}

// updateSheet runs each excerpt's command as the sheet shows it and puts
// its output in place of the old excerpt.
func updateSheet(t *testing.T, name, text string) {
	out := sheetCommand.ReplaceAllStringFunc(text, func(block string) string {
		x := sheetCommand.FindStringSubmatch(block)
		code, stdout, stderr := runHere(t, strings.Fields(x[1])...)
		if code != 0 {
			t.Fatalf("ipcplay %s: exit %d: %s", x[1], code, stderr)
		}
		return strings.Replace(block, x[2], stdout, 1)
	})
	if err := os.WriteFile(name, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}
