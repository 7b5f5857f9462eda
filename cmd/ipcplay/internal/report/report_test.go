package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"ipcplay/procs/cost"
	"strings"
	"testing"
	"time"
)

func sample() *Report {
	r := New("lab sub", "a lab run over 3 numbers")
	r.Config["procs"] = 4
	t := r.Table("results", "results",
		Col("label", "label", Text),
		Col("n", "n", BigInt),
		Col("elapsed_ns", "elapsed", Millis),
		Opt("checked", "checked", Int, 2),
		Opt("size", "size", Bytes, 1),
		Opt("rate", "rate", PerSec, 3),
		Col("ratio", "procs/goroutines", Ratio),
	)
	t.Row("big", uint64(100109100129100369), 1500*time.Microsecond, 123456789, int64(65537), 1.5e7, 1.04)
	t.Row("none", uint64(7), time.Duration(0), nil, int64(1<<20), 950.0, nil)
	p := r.Plot("latency", "latency against size", Axis{Label: "size", Unit: "B", Log: true}, Axis{Label: "latency", Unit: "µs", Log: true})
	l := p.Line("pipe", false)
	l.Add(8, 5.2)
	l.Add(4096, 9.1)
	g := p.Line("channel", true)
	g.Add(8, 0.2)
	g.Add(4096, 0.4)
	r.Verdictf("processes were %.2fx goroutines", 1.04)
	r.Notef("a note that is long enough to wrap: %s", strings.Repeat("words ", 30))
	return r
}

func TestTextFits(t *testing.T) {
	for _, width := range []int{40, 60, 80, 120} {
		var buf bytes.Buffer
		if err := WriteText(&buf, sample(), width, false); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(buf.String(), "\n") {
			if n := len([]rune(l)); n > width {
				t.Errorf("width %d: line of %d columns: %q", width, n, l)
			}
			if strings.HasSuffix(l, " ") {
				t.Errorf("width %d: line ends in a space: %q", width, l)
			}
		}
		if !strings.Contains(buf.String(), "verdict: processes were") {
			t.Errorf("width %d: no verdict in\n%s", width, buf.String())
		}
	}
}

func TestTextDropsByPriority(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteText(&buf, sample(), 60, false); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// "rate" (priority 3) goes before "checked" (2) before "size" (1).
	if strings.Contains(out, "RATE/s") {
		t.Errorf("the lowest-priority column was kept at 60 columns:\n%s", out)
	}
	if !strings.Contains(out, "100109100129100369") || !strings.Contains(out, "1.04x") {
		t.Errorf("a column that is never dropped is missing:\n%s", out)
	}
	if !strings.Contains(out, "hidden to fit 60 columns") {
		t.Errorf("no word of the hidden columns:\n%s", out)
	}
	buf.Reset()
	if err := WriteText(&buf, sample(), 60, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "RATE/s") {
		t.Errorf("--wide dropped a column:\n%s", buf.String())
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["schema_version"] != json.Number("1") {
		t.Errorf("schema_version = %v, want 1", doc["schema_version"])
	}
	rows := doc["tables"].([]any)[0].(map[string]any)["rows"].([]any)
	first := rows[0].(map[string]any)
	if got := first["n"]; got != "100109100129100369" {
		t.Errorf("n = %#v, want the decimal string", got)
	}
	if got := first["elapsed_ns"]; got != json.Number("1500000") {
		t.Errorf("elapsed_ns = %#v, want 1500000", got)
	}
	if got := rows[1].(map[string]any)["checked"]; got != nil {
		t.Errorf("a nil cell = %#v, want null", got)
	}
	if v := doc["verdict"].([]any); len(v) != 1 {
		t.Errorf("verdict = %v, want one line", v)
	}
}

func TestBadRowFailsWrite(t *testing.T) {
	r := sample()
	r.Tables[0].Row("too", "few")
	if err := WriteText(io.Discard, r, 80, false); err != nil {
		t.Fatal(err) // the text renderer shows what is there
	}
	if err := checkTables(r); err == nil {
		t.Error("a row of the wrong length was accepted")
	}
}

func TestSVGWellFormed(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSVG(&buf, sample().Plots[0]); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&buf)
	lines, dashed := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
			for _, a := range se.Attr {
				if a.Name.Local == "stroke-dasharray" {
					dashed++
				}
				if a.Name.Local == "points" && strings.Count(a.Value, ",") != 2 {
					t.Errorf("polyline points = %q, want 2 points", a.Value)
				}
			}
		}
	}
	if lines != 2 || dashed != 1 {
		t.Errorf("SVG has %d lines, %d dashed; want 2, 1", lines, dashed)
	}
}

func TestHTMLSelfContained(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"<table>", "<svg", "polyline", "processes were 1.04x goroutines", "100109100129100369"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "src=", "<link"} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Errorf("page refers outside itself: %q", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	d, err := Validate(buf.Bytes())
	if err != nil {
		t.Fatalf("Validate(sample) = %v", err)
	}
	if n, ok := d.Table("results").Int(0, "n"); !ok || n != 100109100129100369 {
		t.Errorf("n = %d, %v", n, ok)
	}
	good := buf.String()
	for name, bad := range map[string]string{
		"unknown field":   strings.Replace(good, `"lab":`, `"extra": 1, "lab":`, 1),
		"bare big int":    strings.Replace(good, `"100109100129100369"`, `100109100129100369`, 1),
		"float duration":  strings.Replace(good, `"elapsed_ns": 1500000`, `"elapsed_ns": 1.5`, 1),
		"schema version":  strings.Replace(good, `"schema_version": 1`, `"schema_version": 2`, 1),
		"null tables":     strings.Replace(good, `"plots": [`, `"plots": null, "x": [`, 1),
		"string in count": strings.Replace(good, `"checked": 123456789`, `"checked": "123456789"`, 1),
	} {
		if bad == good {
			t.Fatalf("%s: the test's replacement did not apply", name)
		}
		if _, err := Validate([]byte(bad)); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
}

func TestCostTable(t *testing.T) {
	r := New("lab", "a lab")
	ct := r.CostTable("message")
	ct.Add("procs", cost.Sample{Syscalls: 50, SyscallMethod: cost.MethodTracepoint,
		Usage: cost.Usage{UserNS: 3000, SysNS: 7000, VolCS: 10}}.Per(1000))
	ct.Add("goroutines", cost.Sample{SyscallMethod: "unavailable: not counted"}.Per(1000))
	dom := ct.Finish()
	if !strings.Contains(dom, "70% of CPU in the kernel") {
		t.Errorf("Finish() = %q, want the kernel's share", dom)
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	d, err := Validate(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	c := d.Table("cost")
	if f, _ := c.Float(0, "syscalls"); f != 0.05 {
		t.Errorf("syscalls per message = %v, want 0.05", f)
	}
	if _, ok := c.Float(1, "syscalls"); ok {
		t.Errorf("syscalls not counted, yet a number: %v", c.Rows[1]["syscalls"])
	}
	if n, _ := c.Int(0, "sys_ns"); n != 7 {
		t.Errorf("kernel ns per message = %d, want 7", n)
	}
}
