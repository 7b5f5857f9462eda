package shmlab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

func benchCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "bench [flags]",
		Short:     "moving bytes to a child: a shared array, a pipe and msgpack, against copy()",
		Long: `Moves SIZE bytes from this process to a child, and within this process for comparison:

  copy     copy() from one buffer to another in this process: the
           memory bandwidth bound.
  shm      the sender copies into a shared byte array the child maps;
           the child is told through a futex semaphore.
  pipe     the sender writes into a pipe (grown to 1 MiB), the child
           reads into its own buffer.
  msgpack  the sender sends 1 MiB msgpack values over a Unix socket
           (package ipc), the child decodes them into its own buffer.

A round's time runs until the bytes are in the child's memory and it has said so. The child then checksums what it received, untimed, and the sender compares: every round sends different bytes. The copy and shm paths take turns, a copy round right before each shm round, so that each shm round is set against a copy of the same moment (the median of those per-round ratios is the verdict's figure). Every buffer, and the shared region on both sides (madvise MADV_POPULATE_WRITE), is faulted in before the first round. The fastest of the rounds is reported. Ctrl-C stops a round within one 16 MiB piece.

Examples:
  ipcplay shm bench
  ipcplay shm bench --size 1GiB --rounds 5
  ipcplay shm bench --size 4K --rounds 100 --json`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	size := base.SizeFlag(f, "size", 64<<20, 1, MaxBenchSize, "bytes to move per round")
	rounds := base.IntFlag(f, "rounds", 3, 1, MaxRounds, "rounds per path; the fastest is reported")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		prog := env.NewProgress(!out.JSON)
		defer prog.Done()
		cfg := BenchConfig{Size: *size, Rounds: *rounds, Progress: func(path string, i, n int) {
			prog.Set(float64(i), float64(n), "shm bench: %s, %d rounds of %s", path, *rounds, base.FormatSize(*size))
		}}
		res, err := Bench(ctx, cfg)
		if err != nil {
			return err
		}
		prog.Done()
		r, bad := benchReport(cfg, res)
		if err := report.Write(env, out, r); err != nil {
			return err
		}
		if len(bad) > 0 {
			return fmt.Errorf("the bytes received through %s did not match what was sent", strings.Join(bad, ", "))
		}
		return nil
	}
	return cmd
}

// benchReport builds the report of a Bench run and lists the paths whose
// bytes did not arrive intact.
func benchReport(cfg BenchConfig, res []BenchResult) (*report.Report, []string) {
	r := report.New("shm bench", fmt.Sprintf("shm bench: moving %s to a child, fastest of %d rounds",
		base.FormatSize(cfg.Size), cfg.Rounds))
	r.Config["size"] = cfg.Size
	r.Config["rounds"] = cfg.Rounds
	t := r.Table("paths", "the fastest round of each path",
		report.Col("path", "path", report.Text),
		report.Opt("bytes", "bytes", report.Bytes, 2),
		report.Col("best_ns", "time", report.Millis),
		report.Col("rate", "rate", report.GBps),
		report.Col("of_copy", "of copy", report.Percent),
		report.Col("verified", "checksum ok", report.Bool),
		report.Opt("pipe_buffer", "pipe buffer", report.Bytes, 1),
	)
	rounds := r.Table("rounds", "every round",
		report.Col("path", "path", report.Text),
		report.Col("round", "round", report.Int),
		report.Col("time_ns", "time", report.Millis),
		report.Col("rate", "rate", report.GBps),
	)
	rounds.Detail = true
	plot := r.Plot("shm-bench-rounds", "rate of each round", report.Axis{Label: "round"},
		report.Axis{Label: "rate", Unit: "GB/s"})
	var copyTime time.Duration
	for _, p := range res {
		if p.Path == PathCopy {
			copyTime = p.Elapsed
		}
	}
	of := map[string]float64{}
	var bad []string
	for _, p := range res {
		var pipe any
		if p.PipeSize > 0 {
			pipe = int64(p.PipeSize)
		}
		var pct any
		if copyTime > 0 && p.Elapsed > 0 {
			of[p.Path] = float64(copyTime) / float64(p.Elapsed)
			pct = 100 * of[p.Path]
		}
		t.Row(p.Path, p.Bytes, p.Elapsed, p.GBps(), pct, p.Verified, pipe)
		if !p.Verified {
			bad = append(bad, p.Path)
		}
		// The copy stays in one process: dashed, as goroutine lines are.
		line := plot.Line(p.Path, p.Path == PathCopy)
		for i, d := range p.Times {
			rate := float64(p.Bytes) / max(d.Seconds(), 1e-9) / 1e9
			rounds.Row(p.Path, i+1, d, rate)
			line.Add(float64(i+1), rate)
		}
	}
	t.Notef("TIME is the fastest round: from the sender's first byte until the child has every byte in its memory. OF COPY is copy's time over this path's: 100%% is as fast as memory bandwidth allows.")
	if len(bad) > 0 {
		r.Warnf("the bytes received through %s did not match what was sent", strings.Join(bad, ", "))
		r.Verdictf("the bytes through %s arrived WRONG: the times above do not count", strings.Join(bad, ", "))
		return r, bad
	}
	for _, p := range []string{PathShm, PathPipe, PathMsgpack} {
		if of[p] > 1.1 {
			r.Warnf("%s beat an in-process copy, which no path to another process can: the copy's rounds were disturbed (a busy machine?); run again with more --rounds", p)
			break
		}
	}
	if x, lo, hi, n := pairedRatio(res); n > 0 {
		r.Verdictf("round by round, against the copy round run right before it, shm moved the bytes at %.0f%% of an in-process copy (median of %d rounds after the first, which also waits for the child to start; range %.0f-%.0f%%)", 100*x, n, 100*lo, 100*hi)
		r.Notef("The copy and shm paths took turns, a copy round right before each shm round; every buffer and the shared region (madvise MADV_POPULATE_WRITE, both sides) were faulted in before the first round.")
	}
	if of[PathShm] > 0 && of[PathPipe] > 0 && of[PathMsgpack] > 0 {
		r.Verdictf("through a shared array the bytes moved at %.0f%% of an in-process copy (one copy, into memory the child maps); through a pipe at %.0f%% and as msgpack over a socket at %.0f%% (two copies through the kernel, in pieces): sharing was %.1fx as fast as the pipe",
			100*of[PathShm], 100*of[PathPipe], 100*of[PathMsgpack], of[PathShm]/of[PathPipe])
	}
	return r, nil
}

// pairedRatio is copy's time over shm's of each round (the two paths take
// turns): the median, the range, and the number of rounds. The first shm
// round also waits for the child to start, so it counts only when it is
// the only one.
func pairedRatio(res []BenchResult) (med, lo, hi float64, n int) {
	var cp, sh []time.Duration
	for _, p := range res {
		switch p.Path {
		case PathCopy:
			cp = p.Times
		case PathShm:
			sh = p.Times
		}
	}
	var xs []float64
	first := 0
	if min(len(cp), len(sh)) > 1 {
		first = 1
	}
	for i := first; i < min(len(cp), len(sh)); i++ {
		if sh[i] > 0 {
			xs = append(xs, float64(cp[i])/float64(sh[i]))
		}
	}
	if len(xs) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2], xs[0], xs[len(xs)-1], len(xs)
}
