//go:build linux

package main

import (
	"context"
	"fmt"
	"time"

	"ipcplay/cmd/ipcplay/internal/pipelab"
)

const benchUsage = "pipes bench [--rounds N] [--bytes N] [--json]"

const benchLong = `
Measures pipes between this process and a child:

  pingpong     1-byte round trips over two pipes (median and p99)
  throughput   the child writes --bytes in 64 KiB writes, the parent reads
               them, at the default pipe size and at 1 MiB

each through two code paths on both sides: "raw", blocking read(2) and
write(2) through golang.org/x/sys/unix on a locked OS thread (what C does),
and "file", *os.File on a non-blocking pipe, where Go's poller parks the
goroutine and epoll wakes it. The same is done by goroutines: unbuffered
channels for ping-pong, io.Pipe and a channel of []byte for throughput.

Figures on a shared machine are noisy: run it on an idle one, and more than
once.`

func runPipesBench(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "pipes bench", benchUsage, benchLong)
	rounds := fs.Int("rounds", 20000, "ping-pong round trips per run")
	size := fs.String("bytes", "256M", "bytes per throughput run (K and M suffixes)")
	asJSON := fs.Bool("json", false, "print one JSON document instead of tables")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *rounds < 1 {
		return usagef("--rounds %d: want at least 1", *rounds)
	}
	ns, err := parseSizes(*size)
	if err != nil || len(ns) != 1 {
		return usagef("--bytes %q: want one size", *size)
	}
	prog := env.newProgress(!*asJSON)
	defer prog.done()
	runs, err := pipelab.Bench(ctx, pipelab.BenchConfig{Rounds: *rounds, Bytes: ns[0]}, func(s string) {
		prog.set("pipes bench: %s", s)
	})
	if err != nil {
		return err
	}
	prog.done()
	rep := benchReport{runs: runs, system: thisSystem()}
	if *asJSON {
		return writeJSON(env.stdout, rep.json())
	}
	return rep.render(env)
}

type benchReport struct {
	runs   []pipelab.BenchRun
	system system
}

func (r *benchReport) find(test, mode, path string, size int) (pipelab.BenchRun, bool) {
	for _, run := range r.runs {
		if run.Test == test && run.Mode == mode && run.Path == path && (size < 0 || run.PipeSize == size) {
			return run, true
		}
	}
	return pipelab.BenchRun{}, false
}

func (r *benchReport) render(env *env) error {
	w := env.stdout
	fmt.Fprintf(w, "pipes bench (%s)\n\nping-pong, 1 byte each way:\n", r.system)
	g, _ := r.find("pingpong", pipelab.ModeGoroutines, pipelab.PathChan, -1)
	t := newTable(w, "MODE", "PATH", "ROUNDS", "MEDIAN µs", "P99 µs", "MEAN µs", "PROCS/GOROUTINES (median)")
	for _, run := range r.runs {
		if run.Test != "pingpong" {
			continue
		}
		rt := "-"
		if run.Mode == pipelab.ModeProcs {
			rt = ratio(run.RTTMedian, g.RTTMedian)
		}
		t.row(run.Mode, run.Path, fmt.Sprint(run.Rounds), micros(run.RTTMedian), micros(run.RTTP99), micros(run.RTTMean), rt)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nthroughput, %d KiB writes:\n", r.chunk()>>10)
	var best float64
	for _, run := range r.runs {
		if run.Test == "throughput" && run.Mode == pipelab.ModeGoroutines {
			best = max(best, run.GBps())
		}
	}
	t = newTable(w, "MODE", "PATH", "PIPE SIZE", "BYTES", "SECONDS", "GB/s", "PROCS/BEST GOROUTINES", "NOTE")
	for _, run := range r.runs {
		if run.Test != "throughput" {
			continue
		}
		if run.Skipped != "" {
			t.row(run.Mode, run.Path, "-", "-", "-", "-", "-", "skipped: "+run.Skipped)
			continue
		}
		size, rt := "-", "-"
		if run.Mode == pipelab.ModeProcs {
			size = fmt.Sprint(run.PipeSize)
			if best > 0 {
				rt = fmt.Sprintf("%.2fx", run.GBps()/best)
			}
		}
		t.row(run.Mode, run.Path, size, fmt.Sprint(run.Bytes), seconds(run.Elapsed), fmt.Sprintf("%.2f", run.GBps()), rt, run.Note)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "vmsplice: the writer lends its pages to the pipe instead of copying them; splice: the reader")
	fmt.Fprintln(w, "moves them on to /dev/null without reading them, so those rows are a pipe's ceiling, not a usable copy.")
	fmt.Fprintf(w, "\n%s\n", r.verdict())
	return nil
}

func (r *benchReport) chunk() int {
	for _, run := range r.runs {
		if run.Chunk > 0 {
			return run.Chunk
		}
	}
	return 64 << 10
}

func (r *benchReport) verdict() string {
	raw, ok1 := r.find("pingpong", pipelab.ModeProcs, pipelab.PathRaw, -1)
	file, ok2 := r.find("pingpong", pipelab.ModeProcs, pipelab.PathFile, -1)
	g, ok3 := r.find("pingpong", pipelab.ModeGoroutines, pipelab.PathChan, -1)
	if !ok1 || !ok2 || !ok3 {
		return "verdict: incomplete run."
	}
	var bigRaw pipelab.BenchRun
	for _, run := range r.runs {
		if run.Test == "throughput" && run.Mode == pipelab.ModeProcs && run.Path == pipelab.PathRaw && run.PipeSize > bigRaw.PipeSize {
			bigRaw = run
		}
	}
	var zc pipelab.BenchRun
	for _, run := range r.runs {
		if run.Test == "throughput" && run.Skipped == "" && run.GBps() > zc.GBps() && run.Mode == pipelab.ModeProcs {
			zc = run
		}
	}
	return fmt.Sprintf("verdict: a pipe round trip between processes takes %s µs with blocking syscalls and %s µs through Go's poller (%s), "+
		"against %s µs between goroutines (%s slower for processes); a %d-byte pipe moves %.2f GB/s with raw reads and writes, "+
		"and at best %.2f GB/s (%s).",
		micros(raw.RTTMedian), micros(file.RTTMedian), ratio(file.RTTMedian, raw.RTTMedian),
		micros(g.RTTMedian), ratio(raw.RTTMedian, g.RTTMedian), bigRaw.PipeSize, bigRaw.GBps(), zc.GBps(), zc.Path)
}

type benchJSON struct {
	SchemaVersion int            `json:"schema_version"`
	System        system         `json:"system"`
	Runs          []benchRunJSON `json:"runs"`
	Verdict       string         `json:"verdict"`
}

type benchRunJSON struct {
	Test     string `json:"test"`
	Path     string `json:"path"`
	Mode     string `json:"mode"`
	PipeSize int    `json:"pipe_size"`
	// Ping-pong.
	Rounds      int      `json:"rounds,omitempty"`
	RTTMedianUS *float64 `json:"rtt_median_us,omitempty"`
	RTTP99US    *float64 `json:"rtt_p99_us,omitempty"`
	RTTMeanUS   *float64 `json:"rtt_mean_us,omitempty"`
	// Throughput.
	Bytes   int64    `json:"bytes,omitempty"`
	Chunk   int      `json:"chunk,omitempty"`
	Seconds *float64 `json:"seconds,omitempty"`
	GBps    *float64 `json:"gbps,omitempty"`
	// RatioToGoroutines is procs/goroutines: round-trip time for ping-pong
	// (the chan run), GB/s for throughput (the fastest goroutine run).
	RatioToGoroutines *float64 `json:"ratio_to_goroutines,omitempty"`
	Note              string   `json:"note,omitempty"`
	Skipped           string   `json:"skipped,omitempty"`
}

func us(d time.Duration) *float64 {
	v := float64(d) / float64(time.Microsecond)
	return &v
}

func (r *benchReport) json() benchJSON {
	doc := benchJSON{SchemaVersion: 1, System: r.system, Runs: []benchRunJSON{}, Verdict: r.verdict()}
	g, _ := r.find("pingpong", pipelab.ModeGoroutines, pipelab.PathChan, -1)
	var best float64
	for _, run := range r.runs {
		if run.Test == "throughput" && run.Mode == pipelab.ModeGoroutines {
			best = max(best, run.GBps())
		}
	}
	for _, run := range r.runs {
		j := benchRunJSON{Test: run.Test, Path: run.Path, Mode: run.Mode, PipeSize: run.PipeSize, Note: run.Note, Skipped: run.Skipped}
		switch {
		case run.Skipped != "":
		case run.Test == "pingpong":
			j.Rounds, j.RTTMedianUS, j.RTTP99US, j.RTTMeanUS = run.Rounds, us(run.RTTMedian), us(run.RTTP99), us(run.RTTMean)
			if run.Mode == pipelab.ModeProcs && g.RTTMedian > 0 {
				v := float64(run.RTTMedian) / float64(g.RTTMedian)
				j.RatioToGoroutines = &v
			}
		case run.Test == "throughput":
			s, gb := run.Elapsed.Seconds(), run.GBps()
			j.Bytes, j.Chunk, j.Seconds, j.GBps = run.Bytes, run.Chunk, &s, &gb
			if run.Mode == pipelab.ModeProcs && best > 0 {
				v := gb / best
				j.RatioToGoroutines = &v
			}
		}
		doc.Runs = append(doc.Runs, j)
	}
	return doc
}
