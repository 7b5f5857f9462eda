package benchlab

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// grid indexes cells by mechanism name and size.
type grid map[string]map[int]*Cell

func (g grid) get(name string, size int) *Cell {
	if c := g[name][size]; c != nil && c.Skip == "" && c.Lat != nil {
		return c
	}
	return nil
}

func sizeKey(size int) string { return fmt.Sprintf("b%d", size) }

func buildReport(cfg Config, cells []*Cell, clock time.Duration, pc *perfCheck, ref *cRef) *report.Report {
	r := report.New("bench", fmt.Sprintf("bench: round trips and one-way throughput, %s, %v a cell", cfg.Placement.Name, cfg.Budget))
	r.Config["placement"] = cfg.Placement.Name
	r.Config["placement_cpus"] = []int{cfg.Placement.Self, cfg.Placement.Other}
	r.Config["seconds_ns"] = int64(cfg.Budget)
	r.Config["full"] = cfg.Full
	var names []string
	for _, m := range cfg.Mechs {
		names = append(names, m.Name)
	}
	r.Config["mechs"] = names
	r.Config["sizes"] = cfg.Sizes
	r.Config["gomaxprocs"] = runtime.GOMAXPROCS(0)
	r.Config["clock_read_ns"] = int64(clock)

	g := grid{}
	for _, c := range cells {
		if g[c.Mech.Name] == nil {
			g[c.Mech.Name] = map[int]*Cell{}
		}
		g[c.Mech.Name][c.Size] = c
	}
	var data []Mech // mechanisms with a size axis, in order
	for _, m := range cfg.Mechs {
		if !m.Notify {
			data = append(data, m)
		}
	}
	// Process rows first, then the goroutine baselines.
	slices.SortStableFunc(data, func(a, b Mech) int { return strings.Compare(string(b.Impl), string(a.Impl)) })
	sizes := make([]int, len(cfg.Sizes))
	for i, s := range cfg.Sizes {
		sizes[i] = int(s)
	}
	slices.Sort(sizes)

	sizeCols := func(suffix string, u report.Unit) []report.Column {
		cols := []report.Column{report.Col("mech", "mech", report.Text)}
		for _, s := range sizes {
			cols = append(cols, report.Col(sizeKey(s)+suffix, shortSize(s), u))
		}
		return cols
	}
	skips := map[string][]string{}
	gridTable := func(name, title, suffix string, u report.Unit, val func(c *Cell) any, rows []Mech) *report.Table {
		t := r.Table(name, title, sizeCols(suffix, u)...)
		for _, m := range rows {
			row := []any{m.label()}
			for _, s := range sizes {
				var v any
				if c := g.get(m.Name, s); c != nil {
					v = val(c)
				} else if c := g[m.Name][s]; c != nil && c.Skip != "" {
					k := m.Name + "\x00" + c.Skip
					if !slices.Contains(skips[k], shortSize(s)) {
						skips[k] = append(skips[k], shortSize(s))
					}
				}
				row = append(row, v)
			}
			t.Row(row...)
		}
		return t
	}
	p50 := gridTable("p50", "round trip, median (µs)", "_ns", report.Micros, func(c *Cell) any { return c.Lat.Quantile(0.5) }, data)
	gridTable("p99", "round trip, 99th percentile (µs)", "_ns", report.Micros, func(c *Cell) any { return c.Lat.Quantile(0.99) }, data)
	// Float, not MBps: the unit in every head ("64B MB/s") would not fit
	// seven sizes in 80 columns; the title and the keys carry it.
	gridTable("throughput", "one-way throughput (MB/s)", "_mbps", report.Float, func(c *Cell) any {
		if c.ThruDur == 0 {
			return nil
		}
		return c.MBps()
	}, data)
	var procRows []Mech
	for _, m := range data {
		if m.Impl == Process {
			procRows = append(procRows, m)
		}
	}
	// A ratio table only when some process cell has its baseline.
	ratioTable := func(name, title, metric string) *report.Table {
		for _, c := range cells {
			if _, ok := besideRatio(c, metric, baseline(metric)); ok {
				return r.Table(name, title, sizeCols("", report.Ratio)...)
			}
		}
		return &report.Table{Columns: sizeCols("", report.Ratio)} // not in the report
	}
	rt := ratioTable("ratio_p50", "median round trip against an unbuffered channel's (x)", "p50")
	tt := ratioTable("ratio_throughput", "throughput against a buffered channel's (x)", "thr")
	ratio := func(metric string) func(c *Cell) any {
		return func(c *Cell) any {
			if x, ok := besideRatio(c, metric, baseline(metric)); ok {
				return x
			}
			return nil
		}
	}
	rp50, rthr := ratio("p50"), ratio("thr")
	for _, m := range procRows {
		a, b := []any{m.label()}, []any{m.label()}
		for _, s := range sizes {
			var x, y any
			if c := g.get(m.Name, s); c != nil {
				x, y = rp50(c), rthr(c)
			}
			a, b = append(a, x), append(b, y)
		}
		rt.Row(a...)
		tt.Row(b...)
	}
	if len(procRows) > 0 {
		rt.Notef("Above 1x a process round trip costs more than a channel round trip of the same size; below 1x it costs less. Each process cell is set against a channel measured right before it, for a tenth of the time (not the chan row above, which ran earlier).")
	}
	if len(skips) > 0 {
		var ss []string
		for k, sz := range skips {
			name, why, _ := strings.Cut(k, "\x00")
			ss = append(ss, fmt.Sprintf("%s %s: %s", name, strings.Join(sz, ", "), why))
		}
		slices.Sort(ss)
		p50.Notef("- marks a cell past a limit: %s.", strings.Join(ss, "; "))
	}
	inProcess(r, cells)
	wakeups(r, cfg, cells, g)
	detail(r, cells)
	costs(r, cells)
	plots(r, data, sizes, g)
	verdict(r, data, procRows, sizes, g)
	ref.report(r)
	if pc != nil {
		pc.report(r)
	}
	notes(r, cfg, cells, clock)
	return r
}

// wakeups is the table of the notification-only mechanisms.
func wakeups(r *report.Report, cfg Config, cells []*Cell, g grid) {
	var rows []*Cell
	for _, c := range cells {
		if c.Mech.Notify && c.Lat != nil {
			rows = append(rows, c)
		}
	}
	if len(rows) == 0 {
		return
	}
	t := r.Table("wakeups", "wake-up round trips, an 8-byte token (µs)",
		report.Col("mech", "mech", report.Text),
		report.Col("p50_ns", "p50", report.Micros),
		report.Col("p99_ns", "p99", report.Micros),
		report.Opt("p999_ns", "p99.9", report.Micros, 2),
		report.Opt("max_ns", "max", report.Micros, 3),
		report.Opt("n", "n", report.Int, 1),
		report.Col("vs_chan", "vs chan", report.Ratio),
	)
	base := g.get("chan", notifySize)
	if base != nil {
		rows = append(rows, base)
	}
	for _, c := range rows {
		var vs any
		if base != nil && c != base {
			vs = float64(c.Lat.Quantile(0.5)) / float64(base.Lat.Quantile(0.5))
		}
		t.Row(c.Mech.label(), c.Lat.Quantile(0.5), c.Lat.Quantile(0.99), c.Lat.Quantile(0.999), c.Lat.Max(), c.Lat.N(), vs)
	}
	t.Notef("eventfd, futex and signal carry only a token: they wake the other side, and the data would travel through shared memory. VS CHAN is against an unbuffered channel round trip of 8 bytes, measured in the same run.")
}

// detail is every cell's full figures (terminal: --wide; JSON always).
func detail(r *report.Report, cells []*Cell) {
	t := r.Table("cells", "every cell",
		report.Col("mech", "mech", report.Text),
		report.Col("impl", "impl", report.Text),
		report.Col("size", "size", report.Bytes),
		report.Opt("placement", "placement", report.Text, 9),
		report.Col("n", "n", report.Int),
		report.Col("p50_ns", "p50", report.Micros),
		report.Col("p99_ns", "p99", report.Micros),
		report.Col("p999_ns", "p99.9", report.Micros),
		report.Col("max_ns", "max", report.Micros),
		report.Opt("spread", "spread", report.Percent, 3),
		report.Opt("mbps", "MB/s", report.MBps, 2),
		report.Opt("msgs_per_sec", "msgs", report.PerSec, 4),
		report.Opt("window", "window", report.Int, 6),
		report.Opt("warmup", "warm-up", report.Int, 7),
		report.Opt("note", "note", report.Text, 5),
	)
	t.Detail = true
	repT := r.Table("reps", "median round trip of each repetition",
		report.Col("mech", "mech", report.Text),
		report.Col("impl", "impl", report.Text),
		report.Col("size", "size", report.Bytes),
		report.Col("placement", "placement", report.Text),
		report.Col("rep", "rep", report.ID),
		report.Col("p50_ns", "p50", report.Micros),
	)
	repT.Detail = true
	for _, c := range cells {
		if c.Lat == nil {
			t.Row(c.Mech.Name, string(c.Mech.Impl), c.Size, c.Placement, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, c.Skip)
			continue
		}
		var notes []string
		if c.Lat.N() < LowSamples {
			notes = append(notes, "p99.9 from <10k samples")
		}
		if c.Mech.Spins && c.Placement == "same-cpu" {
			notes = append(notes, "spins on one CPU: measures the time slice")
		}
		var mbps, rate, win any
		if c.ThruDur > 0 {
			mbps, rate, win = c.MBps(), c.MsgsPerSec(), c.Window
		}
		t.Row(c.Mech.Name, string(c.Mech.Impl), c.Size, c.Placement, c.Lat.N(), c.Lat.Quantile(0.5), c.Lat.Quantile(0.99),
			c.Lat.Quantile(0.999), c.Lat.Max(), spread(c.Reps), mbps, rate, win, c.Warm, strings.Join(notes, "; "))
		for i, d := range c.Reps {
			repT.Row(c.Mech.Name, string(c.Mech.Impl), c.Size, c.Placement, i+1, d)
		}
	}
	t.Notef("SPREAD is (slowest - fastest) / median of the %d repetitions' medians. N is the timed round trips behind the percentiles; a p99.9 from fewer than %s is marked.", reps, base.Count(LowSamples))
}

func spread(ds []time.Duration) any {
	if len(ds) < 2 {
		return nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if med == 0 {
		return nil
	}
	return 100 * float64(s[len(s)-1]-s[0]) / float64(med)
}

// costs is the per-round-trip cost of the process cells that counted it.
func costs(r *report.Report, cells []*Cell) {
	var ct *report.CostTable
	for _, c := range cells {
		if c.Cost == nil {
			continue
		}
		if ct == nil {
			ct = r.CostTable("round trip")
		}
		ct.Add(c.Mech.Name+" "+sizeName(c.Size), *c.Cost)
	}
	if ct != nil {
		ct.Finish()
		if t := r.Lookup("cost"); t != nil {
			t.Detail = true
		}
	}
}

func plots(r *report.Report, data []Mech, sizes []int, g grid) {
	if len(sizes) < 2 {
		return
	}
	lat := r.Plot("latency", "median round trip against message size", report.Axis{Label: "message size", Unit: "B", Log: true}, report.Axis{Label: "round trip p50", Unit: "µs", Log: true})
	thr := r.Plot("throughput", "one-way throughput against message size", report.Axis{Label: "message size", Unit: "B", Log: true}, report.Axis{Label: "throughput", Unit: "MB/s", Log: true})
	for _, m := range data {
		dashed := m.Impl == Goroutine
		var l, t *report.Line
		for _, s := range sizes {
			c := g.get(m.Name, s)
			if c == nil {
				continue
			}
			if l == nil {
				l = lat.Line(m.label(), dashed)
			}
			l.Add(float64(s), float64(c.Lat.Quantile(0.5))/1e3)
			if c.ThruDur > 0 {
				if t == nil {
					t = thr.Line(m.label(), dashed)
				}
				t.Add(float64(s), c.MBps())
			}
		}
	}
}

func notes(r *report.Report, cfg Config, cells []*Cell, clock time.Duration) {
	r.Notef("Every round trip is timed with two reads of the monotonic clock, which cost %s each here (measured; not subtracted). Each cell warms up for a tenth of %v, then times as many round trips as fill %v, cut into 5 repetitions.", base.Human(clock), cfg.Budget, cfg.Budget)
	r.Notef("Throughput: the sender sends batches of up to 64 messages (64 KiB at most), each batch ended by a one-byte acknowledgement, for %v. Goroutine mechanisms copy each message in and out, as a pipe copies it into and out of the kernel.", cfg.Budget/2)
	switch cfg.Placement.Name {
	case "unpinned":
		r.Notef("Unpinned: the scheduler places both ends; --placement same-cpu or two-cpus pins them.")
	default:
		r.Notef("Pinned (%s): the measuring goroutine is locked to its thread (runtime.LockOSThread) and that thread bound to CPU %d with sched_setaffinity; the echo end's thread (child process or goroutine) to CPU %d. Other threads of both processes are not pinned.", cfg.Placement.Name, cfg.Placement.Self, cfg.Placement.Other)
	}
	for _, c := range cells {
		if c.Mech.Spins && cfg.Placement.Name == "same-cpu" {
			r.Warnf("spin with both ends on one CPU measures the scheduler's time slice, not the mechanism")
			break
		}
	}
	r.Warnf("a shared, loaded machine makes these figures noisy: compare cells of one run (they were measured interleaved), and repeat runs for a range (ipcplay compare)")
}

// verdict says in plain words what a process boundary costs here.
func verdict(r *report.Report, data, procRows []Mech, sizes []int, g grid) {
	type span struct {
		lo, hi         float64
		loName, hiName string
		n              int
	}
	var small span
	var smallMax int
	for _, s := range sizes {
		if s > 4<<10 {
			continue
		}
		smallMax = s
		for _, m := range procRows {
			c := g.get(m.Name, s)
			if c == nil {
				continue
			}
			x, ok := besideRatio(c, "p50", "chan")
			if !ok {
				continue
			}
			if small.n == 0 || x < small.lo {
				small.lo, small.loName = x, m.Name
			}
			if small.n == 0 || x > small.hi {
				small.hi, small.hiName = x, m.Name
			}
			small.n++
		}
	}
	if small.n == 1 {
		r.Verdictf("up to %s a process boundary (%s) costs %sx an unbuffered channel's round trip here",
			sizeName(smallMax), small.loName, times(small.lo))
	} else if small.n > 1 {
		r.Verdictf("up to %s a process boundary costs %s-%sx an unbuffered channel's round trip here (%s cheapest, %s dearest)",
			sizeName(smallMax), times(small.lo), times(small.hi), small.loName, small.hiName)
	}
	for _, s := range sizes {
		if s < 256<<10 {
			continue
		}
		var best *Cell
		for _, m := range procRows {
			if c := g.get(m.Name, s); c != nil && (best == nil || c.MBps() > best.MBps()) {
				best = c
			}
		}
		if best == nil {
			continue
		}
		if x, ok := besideRatio(best, "thr", "chan-buf"); ok {
			r.Verdictf("at %s the fastest process mechanism (%s, %.0f MB/s) moves %.2fx a buffered channel's one-way throughput (%.0f MB/s, measured beside it)",
				sizeName(s), best.Mech.Name, best.MBps(), x, best.Beside["chan-buf"].MBps())
		}
		break
	}
	if len(r.Verdict) == 0 {
		r.Verdictf("no process cell had a goroutine baseline of the same size: run with --mech including chan and chan-buf to compare")
	}
}

// times formats a ratio with two significant digits: 0.93, 4.1, 25.
func times(x float64) string {
	if x >= 10 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.2g", x)
}

// shortSize is a size as a narrow column head: 8B, 64B, 4K, 256K, 1M.
func shortSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// besideRatio sets process cell c against the goroutine cell of mechanism
// name measured beside it: round trip over round trip for metric "p50",
// throughput over throughput otherwise.
func besideRatio(c *Cell, metric, name string) (float64, bool) {
	b := c.Beside[name]
	if b == nil || c.Skip != "" || c.Lat == nil {
		return 0, false
	}
	if metric == "p50" {
		if b.Lat == nil || b.Lat.Quantile(0.5) == 0 {
			return 0, false
		}
		return float64(c.Lat.Quantile(0.5)) / float64(b.Lat.Quantile(0.5)), true
	}
	if b.MBps() == 0 || c.MBps() == 0 {
		return 0, false
	}
	return c.MBps() / b.MBps(), true
}

// inProcess is shm-copy set against copy-ring, the same ring and hand-off
// between two goroutines: what the process boundary alone costs a copy
// through shared memory.
func inProcess(r *report.Report, cells []*Cell) {
	var t *report.Table
	var big []float64
	var bigSizes []string
	for _, c := range cells {
		b := c.Beside["copy-ring"]
		if b == nil || b.Lat == nil || c.Lat == nil {
			continue
		}
		if t == nil {
			t = r.Table("shm_in_process", "shm-copy against the same ring in one process (copy-ring)",
				report.Col("size", "size", report.Bytes),
				report.Col("mbps", "MB/s", report.Float),
				report.Col("in_process_mbps", "in-proc MB/s", report.Float),
				report.Col("thr_ratio", "thr", report.Ratio),
				report.Opt("p50_ns", "p50", report.Micros, 1),
				report.Opt("in_process_p50_ns", "in-proc p50", report.Micros, 1),
			)
		}
		x, _ := besideRatio(c, "thr", "copy-ring")
		var xv any
		if x > 0 {
			xv = x
			if c.Size >= 256<<10 {
				big = append(big, x)
				bigSizes = append(bigSizes, sizeName(c.Size))
			}
		}
		t.Row(c.Size, c.MBps(), b.MBps(), xv, c.Lat.Quantile(0.5), b.Lat.Quantile(0.5))
	}
	if t == nil {
		return
	}
	t.Notef("Both copy each message into a ring slot and out of it, with the same futex hand-off; copy-ring's two ends are goroutines of this process, measured right before shm-copy. The memfd's pages were faulted in on both sides (madvise MADV_POPULATE_WRITE) before anything was timed.")
	if len(big) > 0 {
		var xs []string
		for _, x := range big {
			xs = append(xs, fmt.Sprintf("%.2fx", x))
		}
		r.Verdictf("at %s shm-copy between processes moves %s the throughput of the same copy within one process (copy-ring, measured beside it)", strings.Join(bigSizes, ", "), strings.Join(xs, ", "))
	}
}
