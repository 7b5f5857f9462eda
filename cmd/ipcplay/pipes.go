//go:build linux

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/pipelab"
	"ipcplay/pipes"
)

var pipesCommand = &command{
	name:  "pipes",
	short: "pipe capacity, and the pipe-buffer deadlocks made real, proven from /proc, and fixed",
	run:   runPipes,
}

const pipesUsage = "pipes <deadlock|capacity|bench> [flags]"

const pipesLong = `
The pipes lab. Subcommands:

  deadlock   make the classic pipe-buffer deadlocks happen between this
             process and a child, prove them from /proc, kill the child, and
             run the fixed code
  capacity   the capacity of a pipe: default, measured, system maximum, and
             what a resize does
  bench      ping-pong latency and throughput over pipes between processes,
             through Go's poller and through raw blocking syscalls, against
             goroutines

Run 'ipcplay pipes <subcommand> -h' for its flags.`

func runPipes(ctx context.Context, env *env, args []string) error {
	return runSubcommand(ctx, env, args, pipesUsage, pipesLong,
		subcommand{"deadlock", runPipesDeadlock},
		subcommand{"capacity", runPipesCapacity},
		subcommand{"bench", runPipesBench})
}

const deadlockUsage = "pipes deadlock [--scenario wait-then-read|stdout-then-stderr|both-directions|all] [--bytes N[,N...]] [--timeout D] [--json]"

const deadlockLong = `
Runs each scenario for real: the child writes N bytes and the parent does the
wrong thing.

  wait-then-read       the parent waits for the child before reading its stdout
  stdout-then-stderr   the parent reads stdout to EOF while the child fills stderr
  both-directions      the parent writes N bytes to the child's stdin without
                       reading the child's stdout, while the child echoes them

A watchdog fires after --timeout without progress (the child publishes the
bytes it wrote in shared memory), reads /proc/PID/task/*/{stat,wchan,syscall}
and the pipe's fill level (FIONREAD), and says "deadlocked" only if the child
sleeps in a write to a full pipe (a child that is merely slow gets more time,
up to three looks). Then it kills the child and runs the fixed
code: drain goroutines on every output pipe, and a writer goroutine for stdin.

Sizes take K and M suffixes (powers of 1024). Sweep them to see the threshold:
--bytes 32K,64K,65K,1M. Exits 0 when every outcome matches its evidence and
every fixed run completed.`

func runPipesDeadlock(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "pipes deadlock", deadlockUsage, deadlockLong)
	scenario := fs.String("scenario", "all", "wait-then-read, stdout-then-stderr, both-directions, or all")
	sizes := fs.String("bytes", "1M", "bytes the child writes; a comma-separated list sweeps sizes")
	timeout := fs.Duration("timeout", pipelab.DefaultTimeout, "how long without progress before the watchdog looks for a deadlock")
	asJSON := fs.Bool("json", false, "print one JSON document instead of a table")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	var scs []pipelab.Scenario
	if *scenario == "all" {
		scs = pipelab.Scenarios()
	} else {
		sc, err := pipelab.ParseScenario(*scenario)
		if err != nil {
			return usagef("--scenario: %v", err)
		}
		scs = []pipelab.Scenario{sc}
	}
	ns, err := parseSizes(*sizes)
	if err != nil {
		return usagef("--bytes: %v", err)
	}
	if *timeout < 10*time.Millisecond {
		return usagef("--timeout %v: want at least 10ms", *timeout)
	}
	capacity, _, err := pipes.MeasureCapacity(0)
	if err != nil {
		return err
	}
	prog := env.newProgress(!*asJSON)
	defer prog.done()
	cfg := pipelab.Config{Timeout: *timeout}
	rep := deadlockReport{capacity: capacity, timeout: *timeout, system: thisSystem()}
	for _, sc := range scs {
		for _, n := range ns {
			prog.set("pipes deadlock: %s, %d bytes", sc, n)
			run, err := pipelab.Deadlock(ctx, sc, n, cfg)
			if err != nil {
				return fmt.Errorf("%s, %d bytes: %w", sc, n, err)
			}
			rep.runs = append(rep.runs, run)
		}
	}
	prog.done()
	if *asJSON {
		if err := writeJSON(env.stdout, rep.json()); err != nil {
			return err
		}
	} else if err := rep.render(env); err != nil {
		return err
	}
	if bad := rep.failures(); bad > 0 {
		return fmt.Errorf("%d of %d runs did not match their evidence or their fix did not complete", bad, len(rep.runs))
	}
	return nil
}

// parseSizes parses "32K,64K,65K,1M".
func parseSizes(s string) ([]int64, error) {
	var ns []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		mult := int64(1)
		upper := strings.ToUpper(f)
		for _, suf := range []struct {
			s string
			m int64
		}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}} {
			if strings.HasSuffix(upper, suf.s) {
				mult, f = suf.m, f[:len(f)-len(suf.s)]
				break
			}
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 1 || n > (1<<30)/mult {
			return nil, fmt.Errorf("size %q: want a positive number of bytes up to 1G, with an optional K or M", f)
		}
		ns = append(ns, n*mult)
	}
	return ns, nil
}

type deadlockReport struct {
	capacity int
	timeout  time.Duration
	system   system
	runs     []pipelab.Run
}

func (r *deadlockReport) failures() int {
	n := 0
	for _, run := range r.runs {
		if !run.OK() {
			n++
		}
	}
	return n
}

func (r *deadlockReport) render(env *env) error {
	w := env.stdout
	fmt.Fprintf(w, "pipes deadlock: pipe capacity %d bytes (measured), watchdog %v without progress (%s)\n\n", r.capacity, r.timeout, r.system)
	t := newTable(w, "SCENARIO", "BYTES", "BROKEN CODE", "EVIDENCE", "BLOCKED AFTER", "PIPE FILL", "STATE", "WCHAN", "SYSCALL", "FIXED", "FIXED ms", "OK")
	for _, run := range r.runs {
		broken := "completed"
		if run.Hung {
			broken = fmt.Sprintf("hung, killed after %s s", seconds(run.BrokenElapsed))
		}
		evidence, blocked, fill, state, wchan, sc := "-", "-", "-", "-", "-", "-"
		if ev := run.Evidence; ev != nil {
			evidence = run.Verdict
			if run.Deadlocked {
				evidence = "DEADLOCK: " + evidence
			}
			blocked = fmt.Sprint(run.BlockedAfterBytes)
			fill = fmt.Sprintf("%d/%d", ev.PipeBuffered, ev.PipeCapacity)
			state, wchan = ev.State, ev.Wchan
			switch {
			case ev.SyscallErr != "":
				sc = "unreadable (" + ev.SyscallErr + ")"
			case ev.SyscallNr >= 0:
				sc = fmt.Sprintf("%s (%d)", pipes.SyscallName(ev.SyscallNr), ev.SyscallNr)
			default:
				sc = "none"
			}
		}
		fixed := "completed"
		if !run.FixedCompleted {
			fixed = "FAILED: " + run.FixedErr
		}
		ok := "yes"
		if !run.OK() {
			ok = "NO"
		}
		t.row(string(run.Scenario), fmt.Sprint(run.Bytes), broken, evidence, blocked, fill, state, wchan, sc, fixed, millis(run.FixedElapsed), ok)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, run := range r.runs {
		if run.Scenario == pipelab.BothDirections && run.Hung {
			fmt.Fprintf(w, "both-directions, %d bytes: the parent was stuck too, after writing %d bytes to stdin (%d sitting in that pipe).\n",
				run.Bytes, run.ParentWritten, run.StdinBuffered)
		}
	}
	fmt.Fprintf(w, "\n%s\n", r.verdict())
	return nil
}

func (r *deadlockReport) verdict() string {
	if bad := r.failures(); bad > 0 {
		return fmt.Sprintf("verdict: %d of %d runs did NOT match their evidence or their fix failed: see the OK column.", bad, len(r.runs))
	}
	var parts []string
	for _, sc := range pipelab.Scenarios() {
		var okMax, hangMin int64 = -1, -1
		for _, run := range r.runs {
			if run.Scenario != sc {
				continue
			}
			if run.Deadlocked && (hangMin < 0 || run.Bytes < hangMin) {
				hangMin = run.Bytes
			}
			if !run.Hung && run.Bytes > okMax {
				okMax = run.Bytes
			}
		}
		switch {
		case hangMin < 0 && okMax < 0:
		case hangMin < 0:
			parts = append(parts, fmt.Sprintf("%s never hung (up to %d bytes)", sc, okMax))
		case okMax < 0:
			parts = append(parts, fmt.Sprintf("%s deadlocked from %d bytes", sc, hangMin))
		default:
			parts = append(parts, fmt.Sprintf("%s completed at %d bytes and deadlocked at %d", sc, okMax, hangMin))
		}
	}
	return fmt.Sprintf("verdict: every outcome matches the kernel's evidence and every fix completed; with a %d-byte pipe, %s.",
		r.capacity, strings.Join(parts, "; "))
}

// deadlockJSON is the --json document.
type deadlockJSON struct {
	SchemaVersion  int       `json:"schema_version"`
	PipeCapacity   int       `json:"pipe_capacity"`
	TimeoutSeconds float64   `json:"timeout_seconds"`
	System         system    `json:"system"`
	Runs           []runJSON `json:"runs"`
	OK             bool      `json:"ok"`
	Verdict        string    `json:"verdict"`
	Scenarios      []string  `json:"scenarios"`
	Sizes          []int64   `json:"sizes"`
}

type runJSON struct {
	Scenario          string          `json:"scenario"`
	Bytes             int64           `json:"bytes"`
	PipeCapacity      int             `json:"pipe_capacity"`
	Hung              bool            `json:"hung"`
	Deadlocked        bool            `json:"deadlocked"`
	Verdict           string          `json:"verdict"`
	BlockedAfterBytes int64           `json:"blocked_after_bytes"`
	ParentWritten     int64           `json:"parent_written,omitempty"`
	StdinBuffered     int             `json:"stdin_buffered,omitempty"`
	Evidence          *pipes.Evidence `json:"evidence"`
	BrokenSeconds     float64         `json:"broken_seconds"`
	FixedCompleted    bool            `json:"fixed_completed"`
	FixedSeconds      float64         `json:"fixed_seconds"`
	FixedBytes        int64           `json:"fixed_bytes"`
	FixedError        string          `json:"fixed_error,omitempty"`
	ChildrenLeft      int             `json:"children_left"`
	OK                bool            `json:"ok"`
}

func (r *deadlockReport) json() deadlockJSON {
	doc := deadlockJSON{
		SchemaVersion:  1,
		PipeCapacity:   r.capacity,
		TimeoutSeconds: r.timeout.Seconds(),
		System:         r.system,
		Runs:           []runJSON{},
		OK:             r.failures() == 0,
		Verdict:        r.verdict(),
	}
	seenSc, seenN := map[string]bool{}, map[int64]bool{}
	for _, run := range r.runs {
		if !seenSc[string(run.Scenario)] {
			seenSc[string(run.Scenario)] = true
			doc.Scenarios = append(doc.Scenarios, string(run.Scenario))
		}
		if !seenN[run.Bytes] {
			seenN[run.Bytes] = true
			doc.Sizes = append(doc.Sizes, run.Bytes)
		}
		doc.Runs = append(doc.Runs, runJSON{
			Scenario: string(run.Scenario), Bytes: run.Bytes, PipeCapacity: run.PipeCapacity,
			Hung: run.Hung, Deadlocked: run.Deadlocked, Verdict: run.Verdict,
			BlockedAfterBytes: run.BlockedAfterBytes, ParentWritten: run.ParentWritten, StdinBuffered: run.StdinBuffered,
			Evidence: run.Evidence, BrokenSeconds: run.BrokenElapsed.Seconds(),
			FixedCompleted: run.FixedCompleted, FixedSeconds: run.FixedElapsed.Seconds(), FixedBytes: run.FixedBytes,
			FixedError: run.FixedErr, ChildrenLeft: run.ChildrenLeft, OK: run.OK(),
		})
	}
	return doc
}

const capacityUsage = "pipes capacity [--json]"

const capacityLong = `
Shows the capacity of a pipe on this system: what F_GETPIPE_SZ reports for a
fresh pipe, what filling one until write(2) fails with EAGAIN counts, the
largest size an unprivileged process may set (/proc/sys/fs/pipe-max-size),
what F_SETPIPE_SZ does with a request for 1 MiB and with one that is not a
power of two pages, and the error for a request over the maximum.`

func runPipesCapacity(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "pipes capacity", capacityUsage, capacityLong)
	asJSON := fs.Bool("json", false, "print one JSON document instead of a table")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	rep, err := pipelab.Capacity()
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, capacityJSON{
			SchemaVersion: 1, System: thisSystem(),
			Default: rep.Default, Measured: rep.Measured, Max: rep.Max,
			ResizeRequest: rep.ResizeRequest, Resized: rep.Resized, ResizedMeasured: rep.ResizedMeasured,
			OddRequest: rep.OddRequest, OddResized: rep.OddResized, OverMaxError: rep.OverMaxErr,
		})
	}
	w := env.stdout
	fmt.Fprintf(w, "pipes capacity (%s)\n\n", thisSystem())
	t := newTable(w, "WHAT", "BYTES", "HOW")
	t.row("default", fmt.Sprint(rep.Default), "F_GETPIPE_SZ on a fresh pipe")
	t.row("measured", fmt.Sprint(rep.Measured), "filled with 4 KiB writes until EAGAIN")
	t.row("system maximum", fmt.Sprint(rep.Max), pipes.MaxSizeFile)
	t.row(fmt.Sprintf("resize to %d", rep.ResizeRequest), fmt.Sprint(rep.Resized), "F_SETPIPE_SZ")
	t.row("measured after resize", fmt.Sprint(rep.ResizedMeasured), "filled until EAGAIN")
	t.row(fmt.Sprintf("resize to %d", rep.OddRequest), fmt.Sprint(rep.OddResized), "rounded up to a power of two pages")
	t.row(fmt.Sprintf("resize to %d", rep.Max+1), "refused", rep.OverMaxErr)
	if err := t.flush(); err != nil {
		return err
	}
	agree := "agrees"
	if rep.Default != rep.Measured || rep.Resized != rep.ResizedMeasured {
		agree = "DISAGREES"
	}
	fmt.Fprintf(w, "\nverdict: a pipe holds %d bytes by default here and up to %d after F_SETPIPE_SZ; filling one %s with what the kernel reports. A writer blocks once it is full.\n",
		rep.Default, rep.Max, agree)
	return nil
}

type capacityJSON struct {
	SchemaVersion   int    `json:"schema_version"`
	System          system `json:"system"`
	Default         int    `json:"default"`
	Measured        int    `json:"measured"`
	Max             int    `json:"max"`
	ResizeRequest   int    `json:"resize_request"`
	Resized         int    `json:"resized"`
	ResizedMeasured int    `json:"resized_measured"`
	OddRequest      int    `json:"odd_request"`
	OddResized      int    `json:"odd_resized"`
	OverMaxError    string `json:"over_max_error"`
}
