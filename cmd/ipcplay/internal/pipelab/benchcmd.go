package pipelab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// Bounds of the bench command's flags: at most a million round trips (a
// few seconds at pipe speed), a gigabyte a run, and a million writes a run.
const (
	maxRounds     = 1_000_000
	minBenchBytes = 1 << 20
	maxBenchBytes = 1 << 30
	minWrite      = 1 << 10
	maxWrite      = 4 << 20
	maxWrites     = 8
)

func benchCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "bench [flags]",
		Short:     "ping-pong latency and throughput over pipes between processes, against goroutines",
		Long: `Measures pipes between this process and a child:

  ping-pong    1-byte round trips over two pipes (median, p99, mean)
  throughput   the child writes --bytes in writes of each --write size,
               the parent reads them, at the default pipe size and at
               1 MiB, and with vmsplice(2) and splice(2)

each through two code paths on both sides: "raw", blocking read(2) and write(2) through golang.org/x/sys/unix on a locked OS thread (what C does), and "file", *os.File on a non-blocking pipe, where Go's poller parks the goroutine and epoll wakes it. Goroutines do the same over unbuffered channels (ping-pong), and io.Pipe and a channel of []byte (throughput). With several --write sizes the lab draws throughput against write size (--svg, --html).

Figures on a shared machine are noisy: run it on an idle one, more than once, and compare with the C program in testdata/pipes-pingpong.c.

Examples:
  ipcplay pipes bench
  ipcplay pipes bench --rounds 100000 --write 64K
  ipcplay pipes bench --write 4K,16K,64K,256K,1M --svg plots`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	rounds := base.IntFlag(f, "rounds", 20000, 1, maxRounds, "ping-pong round trips per run")
	n := base.SizeFlag(f, "bytes", 64<<20, minBenchBytes, maxBenchBytes, "bytes per throughput run")
	writes := base.SizesFlag(f, "write", []int64{4 << 10, 64 << 10, 1 << 20}, minWrite, maxWrite,
		"write (and read) sizes of the throughput runs")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if len(*writes) > maxWrites {
			return base.Usagef("--write: %d sizes; want at most %d", len(*writes), maxWrites)
		}
		chunks := make([]int, 0, len(*writes))
		for _, w := range *writes {
			if !slices.Contains(chunks, int(w)) {
				chunks = append(chunks, int(w))
			}
		}
		slices.Sort(chunks)
		cfg := BenchConfig{Rounds: *rounds, Bytes: *n, Chunks: chunks}
		prog := env.NewProgress(!out.JSON)
		defer prog.Done()
		total := float64(3 + 9*len(chunks))
		done := 0.0
		runs, err := Bench(ctx, cfg, func(s string) {
			prog.Set(done, total, "pipes bench: %s", s)
			done++
		})
		if err != nil {
			return err
		}
		prog.Done()
		return report.Write(env, out, benchReport(cfg, runs))
	}
	return cmd
}

// benchLab is the runs of one bench, found by what they measured.
type benchLab struct {
	cfg  BenchConfig
	runs []BenchRun
}

func (l *benchLab) find(test, mode, path string) (BenchRun, bool) {
	for _, r := range l.runs {
		if r.Test == test && r.Mode == mode && r.Path == path {
			return r, true
		}
	}
	return BenchRun{}, false
}

// bestGoroutines is the fastest goroutine throughput at write size chunk.
func (l *benchLab) bestGoroutines(chunk int) float64 {
	var best float64
	for _, r := range l.runs {
		if r.Test == "throughput" && r.Mode == ModeGoroutines && r.Chunk == chunk {
			best = max(best, r.GBps())
		}
	}
	return best
}

// config names a throughput configuration across write sizes: its mode,
// path and pipe size (0 for goroutines).
type config struct {
	mode, path string
	pipe       int
}

func (c config) label() string {
	if c.mode == ModeGoroutines {
		return "goroutines " + c.path
	}
	return fmt.Sprintf("%s, %s pipe", c.path, base.FormatSize(int64(c.pipe)))
}

// configs lists the throughput configurations in the order they ran.
func (l *benchLab) configs() []config {
	var cs []config
	for _, r := range l.runs {
		if r.Test != "throughput" {
			continue
		}
		c := config{r.Mode, r.Path, r.PipeSize}
		if r.Skipped != "" {
			c.pipe = l.cfg.BigPipe
		}
		if !slices.Contains(cs, c) {
			cs = append(cs, c)
		}
	}
	return cs
}

func (l *benchLab) throughput(c config, chunk int) (BenchRun, bool) {
	for _, r := range l.runs {
		if r.Test == "throughput" && r.Mode == c.mode && r.Path == c.path && r.Chunk == chunk &&
			(r.PipeSize == c.pipe || r.Skipped != "") {
			return r, true
		}
	}
	return BenchRun{}, false
}

func benchReport(cfg BenchConfig, runs []BenchRun) *report.Report {
	for _, r := range runs {
		if r.Test == "throughput" && r.Mode == ModeProcs && r.PipeSize > cfg.BigPipe {
			cfg.BigPipe = r.PipeSize
		}
	}
	l := &benchLab{cfg: cfg, runs: runs}
	var ws []string
	for _, c := range cfg.Chunks {
		ws = append(ws, base.FormatSize(int64(c)))
	}
	r := report.New("pipes bench", fmt.Sprintf("pipes bench: %s round trips; %s a run in %s writes",
		base.Count(int64(cfg.Rounds)), base.FormatSize(cfg.Bytes), strings.Join(ws, ", ")))
	r.Config["rounds"] = cfg.Rounds
	r.Config["bytes"] = cfg.Bytes
	r.Config["writes"] = cfg.Chunks
	r.Config["big_pipe"] = cfg.BigPipe

	pp := r.Table("pingpong", "ping-pong, 1 byte each way",
		report.Col("mode", "mode", report.Text),
		report.Col("path", "path", report.Text),
		report.Opt("rounds", "rounds", report.Int, 2),
		report.Col("median_ns", "median", report.Micros),
		report.Col("p99_ns", "p99", report.Micros),
		report.Opt("mean_ns", "mean", report.Micros, 1),
		report.Col("vs_goroutines", "vs goroutines", report.Ratio),
	)
	g, _ := l.find("pingpong", ModeGoroutines, PathChan)
	for _, run := range runs {
		if run.Test != "pingpong" {
			continue
		}
		var rt any
		if run.Mode == ModeProcs && g.RTTMedian > 0 {
			rt = float64(run.RTTMedian) / float64(g.RTTMedian)
		}
		pp.Row(run.Mode, run.Path, run.Rounds, run.RTTMedian, run.RTTP99, run.RTTMean, rt)
	}
	pp.Notef("VS GOROUTINES is the median round trip over the goroutines' median.")

	ct := r.CostTable("round trip")
	for _, run := range runs {
		if run.Test == "pingpong" && run.HasCost {
			ct.Add(run.Mode+", "+run.Path, run.Cost)
		}
	}
	dominant := ct.Finish()

	tp := r.Table("throughput", "throughput, one row a run",
		report.Col("mode", "mode", report.Text),
		report.Col("path", "path", report.Text),
		report.Col("pipe", "pipe", report.Bytes),
		report.Col("write", "write", report.Bytes),
		report.Opt("bytes", "bytes", report.Bytes, 3),
		report.Opt("elapsed_ns", "elapsed", report.Millis, 2),
		report.Col("gbps", "speed", report.GBps),
		report.Opt("vs_best_goroutines", "vs best gor", report.Ratio, 1),
		report.Opt("note", "note", report.Text, 4),
		report.Opt("skipped", "skipped", report.Text, 5),
	)
	for _, run := range runs {
		if run.Test != "throughput" {
			continue
		}
		var pipe, elapsed, gbps, rt, note, skipped any
		if run.Mode == ModeProcs && run.PipeSize > 0 {
			pipe = run.PipeSize
		}
		if run.Note != "" {
			note = run.Note
		}
		if run.Skipped != "" {
			skipped = run.Skipped
		} else {
			elapsed, gbps = run.Elapsed, run.GBps()
			if best := l.bestGoroutines(run.Chunk); run.Mode == ModeProcs && best > 0 {
				rt = run.GBps() / best
			}
		}
		tp.Row(run.Mode, run.Path, pipe, run.Chunk, run.Bytes, elapsed, gbps, rt, note, skipped)
	}
	if len(cfg.Chunks) > 1 {
		tp.Detail = true
		l.pivot(r)
		l.plot(r)
	}
	r.Notef("vmsplice: the writer lends its pages to the pipe instead of copying them; splice: the reader moves them on to /dev/null without reading them, so the splice rows are a pipe's ceiling, not a usable copy.")
	for _, run := range runs {
		if run.Skipped != "" {
			r.Notef("%s skipped with %s writes: %s", run.Path, base.FormatSize(int64(run.Chunk)), run.Skipped)
		}
	}
	l.verdict(r)
	if dominant != "" {
		r.Verdictf("where a round trip's time goes: %s", dominant)
	}
	return r
}

// pivot adds the table of GB/s by configuration and write size.
func (l *benchLab) pivot(r *report.Report) {
	cols := []report.Column{report.Col("config", "throughput", report.Text)}
	for _, c := range l.cfg.Chunks {
		s := base.FormatSize(int64(c))
		cols = append(cols, report.Col("gbps_"+strings.ToLower(s), s, report.GBps))
	}
	t := r.Table("throughput_by_write", "throughput by write size", cols...)
	for _, c := range l.configs() {
		row := []any{c.label()}
		for _, chunk := range l.cfg.Chunks {
			run, ok := l.throughput(c, chunk)
			if !ok || run.Skipped != "" {
				row = append(row, nil)
				continue
			}
			row = append(row, run.GBps())
		}
		t.Row(row...)
	}
	t.Notef("GB/s = 10^9 bytes a second; - = skipped (see the notes). The raw and file rows are processes; --wide shows one row a run.")
}

// plot adds throughput against write size, one line per configuration,
// goroutines dashed.
func (l *benchLab) plot(r *report.Report) {
	p := r.Plot("pipes_throughput", "pipe throughput against write size",
		report.Axis{Label: "write size", Unit: "B", Log: true},
		report.Axis{Label: "throughput", Unit: "GB/s", Log: true})
	for _, c := range l.configs() {
		var line *report.Line
		for _, chunk := range l.cfg.Chunks {
			run, ok := l.throughput(c, chunk)
			if !ok || run.Skipped != "" || run.GBps() <= 0 {
				continue
			}
			if line == nil {
				line = p.Line(c.label(), c.mode == ModeGoroutines)
			}
			line.Add(float64(chunk), run.GBps())
		}
	}
}

func (l *benchLab) verdict(r *report.Report) {
	raw, ok1 := l.find("pingpong", ModeProcs, PathRaw)
	file, ok2 := l.find("pingpong", ModeProcs, PathFile)
	g, ok3 := l.find("pingpong", ModeGoroutines, PathChan)
	if ok1 && ok2 && ok3 && g.RTTMedian > 0 && raw.RTTMedian > 0 {
		r.Verdictf("a pipe round trip between processes took %s with blocking syscalls and %s through Go's poller (%.2fx), against %s between goroutines: processes were %.0fx slower",
			base.Human(raw.RTTMedian), base.Human(file.RTTMedian), ratioOf(file.RTTMedian, raw.RTTMedian),
			base.Human(g.RTTMedian), ratioOf(raw.RTTMedian, g.RTTMedian))
	}
	chunk := l.cfg.Chunks[len(l.cfg.Chunks)-1]
	if slices.Contains(l.cfg.Chunks, 64<<10) {
		chunk = 64 << 10
	}
	small, _ := l.throughput(config{ModeProcs, PathRaw, l.pipeSize(0)}, chunk)
	big, _ := l.throughput(config{ModeProcs, PathRaw, l.cfg.BigPipe}, chunk)
	var best BenchRun
	for _, run := range l.runs {
		if run.Test == "throughput" && run.Mode == ModeProcs && run.Skipped == "" && run.GBps() > best.GBps() {
			best = run
		}
	}
	if small.GBps() > 0 && big.GBps() > 0 {
		r.Verdictf("with %s writes, raw reads and writes moved %.2f GB/s through a %s pipe and %.2f GB/s through a %s one; the fastest process run was %s (%s writes, %.2f GB/s), against %.2f GB/s for the faster goroutine path",
			base.FormatSize(int64(chunk)), small.GBps(), base.FormatSize(int64(small.PipeSize)), big.GBps(),
			base.FormatSize(int64(big.PipeSize)), best.Path, base.FormatSize(int64(best.Chunk)), best.GBps(), l.bestGoroutines(chunk))
	}
	if n := len(l.cfg.Chunks); n > 1 {
		lo, _ := l.throughput(config{ModeProcs, PathRaw, l.pipeSize(0)}, l.cfg.Chunks[0])
		hi, _ := l.throughput(config{ModeProcs, PathRaw, l.pipeSize(0)}, l.cfg.Chunks[n-1])
		if lo.GBps() > 0 && hi.GBps() > 0 {
			r.Verdictf("raw throughput through the default pipe went from %.2f GB/s with %s writes to %.2f GB/s with %s writes (%.2fx): every write(2) and read(2) pays for a system call and a wake-up, and bigger writes pay it less often",
				lo.GBps(), base.FormatSize(int64(l.cfg.Chunks[0])), hi.GBps(), base.FormatSize(int64(l.cfg.Chunks[n-1])), hi.GBps()/lo.GBps())
		}
	}
}

// pipeSize is the default pipe size the runs used (what != 0 asks for is
// the big pipe).
func (l *benchLab) pipeSize(big int) int {
	if big != 0 {
		return l.cfg.BigPipe
	}
	for _, r := range l.runs {
		if r.Test == "throughput" && r.Mode == ModeProcs && r.PipeSize > 0 && r.PipeSize != l.cfg.BigPipe {
			return r.PipeSize
		}
	}
	return 0
}

func ratioOf(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
