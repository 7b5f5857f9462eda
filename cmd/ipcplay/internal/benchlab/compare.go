package benchlab

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// alpha is the significance level: a difference with a larger p-value is
// reported as no difference ("~"), as benchstat does.
const alpha = 0.05

// CompareCommand returns the compare command.
func CompareCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "compare [flags] OLD.json NEW.json",
		Short:     "two saved bench runs cell by cell, with ratios and a significance test",
		Long: `Reads two documents written by 'ipcplay bench --json' and sets their cells side by side: the median round trip of each (the median of its repetitions' medians), NEW/OLD, and the p-value of a Mann-Whitney U test over the repetitions' medians, in the manner of benchstat. A difference with p above 0.05 is shown as "~": the runs do not tell it from noise. Cells present in only one run are left out and counted.

Examples:
  ipcplay bench --json > old.json; ipcplay bench --json > new.json
  ipcplay compare old.json new.json
  ipcplay compare --json old.json new.json`,
	}
	out := base.AddOutputFlags(&cmd.Flag)
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) != 2 {
			return base.Usagef("want two files, OLD.json and NEW.json")
		}
		r, err := compare(args[0], args[1])
		if err != nil {
			return err
		}
		return report.Write(env, out, r)
	}
	return cmd
}

type cellKey struct {
	Mech, Impl, Placement string
	Size                  int64
}

// loadReps reads a bench document and returns each cell's repetition
// medians, in the order the cells first appear.
func loadReps(name string) (map[cellKey][]float64, []cellKey, *report.Doc, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read run: %w", err)
	}
	doc, err := report.Validate(b)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read run %s: %w", name, err)
	}
	if doc.Lab != "bench" {
		return nil, nil, nil, fmt.Errorf("read run %s: a %q report, want one of 'ipcplay bench --json'", name, doc.Lab)
	}
	t := doc.Table("reps")
	if t == nil {
		return nil, nil, nil, fmt.Errorf("read run %s: no repetitions table", name)
	}
	m := map[cellKey][]float64{}
	var order []cellKey
	for i := range t.Rows {
		size, _ := t.Int(i, "size")
		k := cellKey{t.String(i, "mech"), t.String(i, "impl"), t.String(i, "placement"), size}
		ns, ok := t.Int(i, "p50_ns")
		if !ok {
			continue
		}
		if _, seen := m[k]; !seen {
			order = append(order, k)
		}
		m[k] = append(m[k], float64(ns))
	}
	return m, order, doc, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func compare(oldName, newName string) (*report.Report, error) {
	old, order, oldDoc, err := loadReps(oldName)
	if err != nil {
		return nil, err
	}
	nw, _, newDoc, err := loadReps(newName)
	if err != nil {
		return nil, err
	}
	r := report.New("compare", fmt.Sprintf("compare: %s against %s, median round trip", newName, oldName))
	r.Config["old"], r.Config["new"] = oldName, newName
	r.Config["old_started"], r.Config["new_started"] = oldDoc.Started, newDoc.Started
	r.Config["alpha"] = alpha
	t := r.Table("compare", "median round trip, old and new (µs)",
		report.Col("mech", "mech", report.Text),
		report.Opt("impl", "impl", report.Text, 2),
		report.Col("size", "size", report.Bytes),
		report.Opt("placement", "placement", report.Text, 3),
		report.Col("old_ns", "old", report.Micros),
		report.Col("new_ns", "new", report.Micros),
		report.Col("ratio", "new/old", report.Ratio),
		report.Col("p", "p", report.Float),
		report.Col("delta", "delta", report.Text),
		report.Opt("n", "n", report.Text, 1),
	)
	var missing, faster, slower, same int
	for _, k := range order {
		a, b := old[k], nw[k]
		if len(b) == 0 {
			missing++
			continue
		}
		ma, mb := median(a), median(b)
		p := mannWhitney(a, b)
		delta := "~"
		var ratio any
		if ma > 0 {
			ratio = mb / ma
		}
		switch {
		case p > alpha:
			same++
		case mb < ma:
			delta = fmt.Sprintf("%+.0f%%", 100*(mb/ma-1))
			faster++
		default:
			delta = fmt.Sprintf("%+.0f%%", 100*(mb/ma-1))
			slower++
		}
		t.Row(k.Mech, k.Impl, k.Size, k.Placement, time.Duration(ma), time.Duration(mb), ratio, p, delta,
			fmt.Sprintf("%d+%d", len(a), len(b)))
	}
	for k := range nw {
		if _, ok := old[k]; !ok {
			missing++
		}
	}
	t.Notef("P is the two-sided Mann-Whitney U test over the repetitions' medians (N old+new); \"~\" marks p > %.2f: no difference the runs can tell from noise. With 5 repetitions a side the smallest possible p is 0.008.", alpha)
	r.Notef("The repetitions are consecutive slices of one cell's time, not independent runs: a machine whose load changes over seconds makes them agree with each other more than with another run, and the test then finds differences that are only the load. Read a p-value as benchstat's with one run a side: compare runs on a quiet machine, and repeat them.")
	if missing > 0 {
		r.Notef("%d cells are in only one of the runs and are left out.", missing)
	}
	r.Verdictf("%d cells faster, %d slower, %d not told apart from noise (p > %.2f)", faster, slower, same, alpha)
	return r, nil
}
