//go:build linux

package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/factor"
)

var factorCommand = &command{
	name:  "factor",
	short: "factorize_naive over 1..N on a pool of processes that survives dying workers, against goroutines",
	run:   runFactor,
}

const factorUsage = "factor [--upto N] [--procs P] [--chunksize C | --sweep] [--kill-worker] [--json]"

const factorLong = `
Runs the classic factorize_naive(n) for every n in 1..N, one task per n,
on a pool of P worker processes (procs/pool) and on P goroutines fed the same
chunks of C tasks over a channel. A chunk is one message each way between
processes, so the cost of messages shows as the difference between the two, per
task; --sweep runs chunk sizes 1, 10, 100, 1000 and 10000 to show it
falling as chunks grow and more tasks share each message.

Every run sums the prime factors of every n (with multiplicity) and checks
the sum against a sieve. --kill-worker SIGKILLs a pool worker half way: the
pool notices, replaces it, re-sends its chunks, and the sum still matches.`

// sweepSizes are the chunk sizes of --sweep.
var sweepSizes = []int{1, 10, 100, 1000, 10000}

func runFactor(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "factor", factorUsage, factorLong)
	upto := fs.Uint64("upto", factor.DefaultUpTo, "factorize every n in 1..N")
	workers := fs.Int("procs", runtime.NumCPU(), "number of workers (processes or goroutines)")
	chunk := fs.Int("chunksize", 1000, "tasks per message")
	sweep := fs.Bool("sweep", false, "run chunk sizes "+strings.Trim(fmt.Sprint(sweepSizes), "[]")+" instead of --chunksize")
	kill := fs.Bool("kill-worker", false, "SIGKILL one pool worker half way through each pool run")
	asJSON := fs.Bool("json", false, "print one JSON document instead of tables")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *upto < 1 || *upto > factor.MaxSieve {
		return usagef("--upto %d: want 1..%d", *upto, factor.MaxSieve)
	}
	if *workers < 1 || *workers > 1024 {
		return usagef("--procs %d: want 1..1024", *workers)
	}
	chunkSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "chunksize" {
			chunkSet = true
		}
	})
	if *sweep && chunkSet {
		return usagef("--chunksize and --sweep: choose one")
	}
	if *chunk < 1 {
		return usagef("--chunksize %d: want at least 1", *chunk)
	}
	sizes := []int{*chunk}
	if *sweep {
		sizes = sweepSizes
	}

	prog := env.newProgress(!*asJSON)
	defer prog.done()
	start := time.Now()
	rep := factorReport{upto: *upto, workers: *workers, sweep: *sweep, kill: *kill, system: thisSystem()}
	rep.want = factor.SieveSum(*upto)
	rep.sieve = time.Since(start)
	for _, size := range sizes {
		for _, mode := range []factor.Mode{factor.Procs, factor.Goroutines} {
			cfg := factor.Config{
				UpTo: *upto, Workers: *workers, ChunkSize: size,
				KillWorker: *kill && mode == factor.Procs,
				Progress: func(done, total uint64) {
					prog.set("factor: %s, chunks of %d: %s of %s (%.0f%%)", mode, size,
						count(done), count(total), 100*float64(done)/float64(max(total, 1)))
				},
			}
			res, err := factor.Run(ctx, mode, cfg)
			if err != nil {
				return err
			}
			rep.runs = append(rep.runs, res)
		}
	}
	prog.done()
	if *asJSON {
		return writeJSON(env.stdout, rep.json())
	}
	return rep.render(env)
}

type factorReport struct {
	upto    uint64
	workers int
	sweep   bool
	kill    bool
	system  system
	want    uint64        // the sieve's sum
	sieve   time.Duration // how long the sieve took
	runs    []factor.Result
}

// pairs returns the procs and goroutines runs of each chunk size.
func (r *factorReport) pairs() [][2]factor.Result {
	var out [][2]factor.Result
	for i := 0; i+1 < len(r.runs); i += 2 {
		out = append(out, [2]factor.Result{r.runs[i], r.runs[i+1]})
	}
	return out
}

// overhead is what each task cost the pool beyond the goroutines' time,
// spread over the workers: (procs - goroutines) x workers / tasks. With one
// task per chunk it is the cost of a message round trip; as chunks grow that
// cost is shared by more tasks, and what is left is encoding and decoding.
func overhead(p, g factor.Result) time.Duration {
	if p.Tasks == 0 {
		return 0
	}
	return (p.Elapsed - g.Elapsed) * time.Duration(p.Workers) / time.Duration(p.Tasks)
}

func (r *factorReport) verified() bool {
	for _, run := range r.runs {
		if run.SumOfFactors != r.want {
			return false
		}
	}
	return true
}

func (r *factorReport) render(env *env) error {
	w := env.stdout
	fmt.Fprintf(w, "factor: factorize_naive(n) for n in 1..%s on %d workers (%s)\n\n", count(r.upto), r.workers, r.system)
	t := newTable(w, "CHUNK", "MODE", "SECONDS", "CPU s", "TASKS/s", "CHUNKS", "SETUP ms", "SUM OF FACTORS", "OK", "DEATHS")
	for _, run := range r.runs {
		ok := "yes"
		if run.SumOfFactors != r.want {
			ok = "NO"
		}
		deaths := "-"
		if run.Mode == factor.Procs {
			deaths = fmt.Sprint(len(run.Events))
		}
		t.row(fmt.Sprint(run.ChunkSize), string(run.Mode), seconds(run.Elapsed), seconds(run.CPU), count(uint64(run.TasksPerSecond())),
			count(run.Chunks), millis(run.Setup), fmt.Sprint(run.SumOfFactors), ok, deaths)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "the sieve says the sum is %d (%s ms).\n", r.want, millis(r.sieve))

	fmt.Fprintln(w, "\nprocesses against goroutines:")
	t = newTable(w, "CHUNK", "PROCS/GOROUTINES", "CPU PROCS/GOROUTINES", "OVERHEAD µs/task*")
	for _, pg := range r.pairs() {
		t.row(fmt.Sprint(pg[0].ChunkSize), ratio(pg[0].Elapsed, pg[1].Elapsed), ratio(pg[0].CPU, pg[1].CPU),
			micros(overhead(pg[0], pg[1])))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "* (procs seconds - goroutines seconds) x workers / tasks: what a task cost a worker beyond the")
	fmt.Fprintln(w, "  work itself. At chunk size 1 that is a message round trip; larger chunks share it among")
	fmt.Fprintln(w, "  their tasks. CPU is user+system time of ipcplay and its workers: on a busy machine it is")
	fmt.Fprintln(w, "  the steadier comparison.")

	var events int
	for _, run := range r.runs {
		events += len(run.Events)
	}
	if events > 0 {
		fmt.Fprintln(w, "\nworker deaths:")
		t = newTable(w, "CHUNK", "SLOT", "PID", "EXIT", "TASKS RE-SENT", "REPLACED BY")
		for _, run := range r.runs {
			for _, ev := range run.Events {
				exit := fmt.Sprint(ev.ExitCode)
				if ev.Signal != "" {
					exit = ev.Signal
				}
				t.row(fmt.Sprint(run.ChunkSize), fmt.Sprint(ev.Slot), fmt.Sprint(ev.PID), exit,
					taskList(ev.Resent), fmt.Sprint(ev.Replacement))
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\n%s\n", r.verdict())
	return nil
}

// taskList shows a list of task indexes as ranges, shortened.
func taskList(idx []int) string {
	if len(idx) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", idx[i], idx[j]))
		} else {
			parts = append(parts, fmt.Sprint(idx[i]))
		}
		i = j + 1
	}
	s := fmt.Sprintf("%d: %s", len(idx), strings.Join(parts, ","))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// verdict is the one line that says what the numbers mean.
func (r *factorReport) verdict() string {
	if !r.verified() {
		return "verdict: WRONG: a run's sum of factors differs from the sieve's."
	}
	pairs := r.pairs()
	best := pairs[0]
	for _, pg := range pairs[1:] {
		if float64(pg[0].Elapsed)/float64(max(pg[1].Elapsed, 1)) < float64(best[0].Elapsed)/float64(max(best[1].Elapsed, 1)) {
			best = pg
		}
	}
	rt := float64(best[0].Elapsed) / float64(max(best[1].Elapsed, 1))
	s := fmt.Sprintf("verdict: every sum verified; the pool took %.2fx the goroutines' time (%.2fx their CPU) at chunk size %d",
		rt, float64(best[0].CPU)/float64(max(best[1].CPU, 1)), best[0].ChunkSize)
	if len(pairs) > 1 {
		first, last := pairs[0], pairs[len(pairs)-1]
		s += fmt.Sprintf(", and the overhead per task fell from %s µs at chunk size %d to %s µs at %d",
			micros(overhead(first[0], first[1])), first[0].ChunkSize,
			micros(overhead(last[0], last[1])), last[0].ChunkSize)
	}
	if r.kill {
		var deaths, resent int
		for _, run := range r.runs {
			deaths += len(run.Events)
			for _, ev := range run.Events {
				resent += len(ev.Resent)
			}
		}
		s += fmt.Sprintf("; %d SIGKILLed worker(s) were replaced and their %d in-flight tasks re-sent, with the same sum", deaths, resent)
	}
	return s + "."
}

// factorJSON is the --json document.
type factorJSON struct {
	SchemaVersion int             `json:"schema_version"`
	UpTo          uint64          `json:"upto"`
	Procs         int             `json:"procs"`
	Sweep         bool            `json:"sweep"`
	KillWorker    bool            `json:"kill_worker"`
	System        system          `json:"system"`
	ExpectedSum   uint64          `json:"expected_sum_of_factors"`
	Verified      bool            `json:"verified"`
	Runs          []factorRunJSON `json:"runs"`
}

type factorRunJSON struct {
	Mode      string  `json:"mode"`
	ChunkSize int     `json:"chunksize"`
	Seconds   float64 `json:"seconds"`
	// OverheadSecondsPerTask is (procs - goroutines) x workers / tasks at
	// this chunk size; only in procs runs.
	OverheadSecondsPerTask *float64    `json:"overhead_seconds_per_task,omitempty"`
	CPUSeconds             float64     `json:"cpu_seconds"`
	SetupSeconds           float64     `json:"setup_seconds"`
	Tasks                  uint64      `json:"tasks"`
	Chunks                 uint64      `json:"chunks"`
	TasksPerSecond         float64     `json:"tasks_per_second"`
	SumOfFactors           uint64      `json:"sum_of_factors"`
	Verified               bool        `json:"verified"`
	KilledPID              int         `json:"killed_pid,omitempty"`
	Events                 []eventJSON `json:"events"`
}

// eventJSON is a pool.Event with its task lists as [first, last] ranges,
// which keeps a chunk of 10,000 re-sent tasks to one line.
type eventJSON struct {
	Time        string   `json:"time"`
	Slot        int      `json:"slot"`
	PID         int      `json:"pid"`
	ExitCode    int      `json:"exit_code"`
	Signal      string   `json:"signal,omitempty"`
	Error       string   `json:"error,omitempty"`
	ResentCount int      `json:"resent_count"`
	Resent      [][2]int `json:"resent"`
	Blamed      [][2]int `json:"blamed"`
	Failed      []int    `json:"failed,omitempty"`
	Replacement int      `json:"replacement"`
}

// ranges turns sorted-in-runs indexes into [first, last] ranges.
func ranges(idx []int) [][2]int {
	out := [][2]int{}
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		out = append(out, [2]int{idx[i], idx[j]})
		i = j + 1
	}
	return out
}

func (r *factorReport) json() factorJSON {
	doc := factorJSON{
		SchemaVersion: 1, UpTo: r.upto, Procs: r.workers, Sweep: r.sweep, KillWorker: r.kill,
		System: r.system, ExpectedSum: r.want, Verified: r.verified(), Runs: []factorRunJSON{},
	}
	for i, run := range r.runs {
		var perTask *float64
		if run.Mode == factor.Procs && i+1 < len(r.runs) {
			o := overhead(run, r.runs[i+1]).Seconds()
			perTask = &o
		}
		evs := []eventJSON{}
		for _, ev := range run.Events {
			evs = append(evs, eventJSON{
				Time: ev.Time.UTC().Format(time.RFC3339Nano), Slot: ev.Slot, PID: ev.PID,
				ExitCode: ev.ExitCode, Signal: ev.Signal, Error: ev.Error,
				ResentCount: len(ev.Resent), Resent: ranges(ev.Resent), Blamed: ranges(ev.Blamed),
				Failed: ev.Failed, Replacement: ev.Replacement,
			})
		}
		doc.Runs = append(doc.Runs, factorRunJSON{
			Mode: string(run.Mode), ChunkSize: run.ChunkSize, Seconds: run.Elapsed.Seconds(), CPUSeconds: run.CPU.Seconds(),
			OverheadSecondsPerTask: perTask,
			SetupSeconds:           run.Setup.Seconds(), Tasks: run.Tasks, Chunks: run.Chunks,
			TasksPerSecond: run.TasksPerSecond(), SumOfFactors: run.SumOfFactors,
			Verified: run.SumOfFactors == r.want, KilledPID: run.Killed, Events: evs,
		})
	}
	return doc
}
