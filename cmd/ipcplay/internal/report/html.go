package report

import (
	"bufio"
	"bytes"
	"fmt"
	"html/template"
	"io"
	"sync"
)

// WriteHTML writes r as one self-contained page: tables with every column,
// the verdict, notes, warnings, the system, and the plots as inline SVG. It
// loads nothing from the network, so a student can open it anywhere or
// hand it in.
func WriteHTML(w io.Writer, r *Report) error {
	type cell struct {
		Text    string
		Numeric bool
	}
	type table struct {
		Title string
		Heads []string
		Rows  [][]cell
		Notes []string
	}
	var doc struct {
		*Report
		HTMLTables []table
		SVGs       []template.HTML
	}
	doc.Report = r
	for _, t := range r.Tables {
		ht := table{Title: t.Title, Notes: t.Notes}
		for _, c := range t.Columns {
			ht.Heads = append(ht.Heads, head(c))
		}
		for _, row := range t.Rows {
			var cs []cell
			for j, v := range row {
				cs = append(cs, cell{format(t.Columns[j].Unit, v), numeric(t.Columns[j].Unit)})
			}
			ht.Rows = append(ht.Rows, cs)
		}
		doc.HTMLTables = append(doc.HTMLTables, ht)
	}
	for _, p := range r.Plots {
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		writeSVG(bw, p, false)
		if err := bw.Flush(); err != nil {
			return err
		}
		// The SVG is ours, built with every text escaped.
		doc.SVGs = append(doc.SVGs, template.HTML(buf.String()))
	}
	if err := pageTemplate().Execute(w, &doc); err != nil {
		return fmt.Errorf("render page: %w", err)
	}
	return nil
}

// pageTemplate is parsed on first use, not at init: every child process
// links this package and must not pay for it.
var pageTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Parse(pageHTML))
})

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ipcplay {{.Lab}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { padding: .2rem .6rem; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { background: #eef6ee; border-left: 4px solid #2a7; padding: .6rem 1rem; }
.warning { background: #fff4e0; border-left: 4px solid #e90; padding: .6rem 1rem; }
.note, .system { color: #555; font-size: .9rem; }
svg { max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>ipcplay {{.Lab}}</h1>
<p>{{.Title}}</p>
{{if .SystemLine}}<p class="system">on {{.SystemLine}}; run started {{.Started.Format "2006-01-02 15:04:05 MST"}}</p>{{end}}
{{range .Verdict}}<p class="verdict">{{.}}</p>
{{end}}{{range .Warnings}}<p class="warning">{{.}}</p>
{{end}}{{range .HTMLTables}}<h2>{{.Title}}</h2>
<table>
<thead><tr>{{range .Heads}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range .}}<td{{if .Numeric}} class="n"{{end}}>{{.Text}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{range .Notes}}<p class="note">{{.}}</p>
{{end}}{{end}}{{range .SVGs}}<figure>{{.}}</figure>
{{end}}{{range .Notes}}<p class="note">{{.}}</p>
{{end}}</body>
</html>
`
