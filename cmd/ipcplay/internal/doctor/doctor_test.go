package doctor

import (
	"bytes"
	"context"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

func TestDoctorJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	p := &base.Program{Name: "ipcplay", Commands: []*base.Command{Command()}}
	if code := p.Main(ctx, base.TestEnv(&out, &errOut), []string{"doctor", "--json"}); code != 0 {
		t.Fatalf("doctor exited %d: %s", code, errOut.String())
	}
	doc, err := report.Validate(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	checks := doc.Table("checks")
	seen := map[string]bool{}
	for i := range checks.Rows {
		seen[checks.String(i, "what")] = true
		if s := checks.String(i, "status"); s != "ok" && s != "missing" {
			t.Errorf("%s: status %q", checks.String(i, "what"), s)
		}
	}
	for _, want := range []string{"cores", "perf", "python3", "C compiler", "POSIX mqueue"} {
		if !seen[want] {
			t.Errorf("no %q check", want)
		}
	}
}
