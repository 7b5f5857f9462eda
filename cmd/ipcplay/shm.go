//go:build linux

package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"ipcplay/cmd/ipcplay/internal/shmlab"
)

var shmCommand = &command{
	name:  "shm",
	short: "shared arrays and futex locks: lost updates, the classic square, sharing against copying",
	run:   runShm,
}

const shmUsage = "shm counter|square|bench [flags] [args]"

const shmLong = `
Labs on memory shared between processes (a memfd region every child maps),
with typed shared arrays and process-shared locks built on futex(2):

  counter  P processes increment one shared counter: without
           synchronization updates are lost; with atomics or a futex mutex
           the count is exact. Each is timed against goroutines.
  square   a child squares a list into a shared array and writes the sum
           into a shared value.
  bench    moving bytes to another process through a shared array, a pipe
           and msgpack over a socket, against copy() in one process.

Run 'ipcplay shm SUBCOMMAND -h' for a subcommand's flags.`

func runShm(ctx context.Context, env *env, args []string) error {
	return runSubcommand(ctx, env, args, shmUsage, shmLong,
		subcommand{"counter", runShmCounter},
		subcommand{"square", runShmSquare},
		subcommand{"bench", runShmBench})
}

const shmCounterUsage = "shm counter [--procs P] [--increments N] [--sync none|atomic|mutex|all] [--json]"

const shmCounterLong = `
P workers increment one shared counter N times each, first as child
processes mapping one memfd region, then as goroutines:

  none    load, add one, store: two workers that load the same value both
          store value+1, and one update is lost. The lab counts the loss
          of this run; it differs from run to run and may even be zero.
  atomic  one atomic add (shm.Value.Add across processes, sync/atomic
          across goroutines): exact.
  mutex   load, add one, store under a lock (shm.Mutex, a futex, across
          processes; sync.Mutex across goroutines): exact.

SECONDS runs from the start signal, after every worker is ready, until
the last one is done.`

func runShmCounter(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "shm counter", shmCounterUsage, shmCounterLong)
	workers := fs.Int("procs", 4, "number of workers (processes, then goroutines), 1.."+fmt.Sprint(shmlab.MaxWorkers))
	increments := fs.Int("increments", 200000, "increments per worker")
	syncName := fs.String("sync", "all", "synchronization: none, atomic, mutex or all")
	asJSON := fs.Bool("json", false, "print one JSON document instead of a table")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *workers < 1 || *workers > shmlab.MaxWorkers {
		return usagef("--procs %d: want 1..%d", *workers, shmlab.MaxWorkers)
	}
	if *increments < 1 {
		return usagef("--increments %d: want at least 1", *increments)
	}
	syncs, err := shmlab.ParseSync(*syncName)
	if err != nil {
		return usagef("--%v", err)
	}
	prog := env.newProgress(!*asJSON)
	defer prog.done()
	var runs []shmlab.CounterResult
	for _, s := range syncs {
		for _, m := range []shmlab.Mode{shmlab.Procs, shmlab.Goroutines} {
			prog.set("shm counter: %s on %s", s, m)
			res, err := shmlab.Counter(ctx, shmlab.CounterConfig{Workers: *workers, Increments: *increments, Sync: s, Mode: m})
			if err != nil {
				return err
			}
			runs = append(runs, res)
		}
	}
	prog.done()
	if *asJSON {
		return writeJSON(env.stdout, counterJSON(*workers, *increments, runs))
	}
	w := env.stdout
	fmt.Fprintf(w, "shm counter: %d workers x %s increments (%s)\n\n", *workers, count(uint64(*increments)), thisSystem())
	t := newTable(w, "SYNC", "MODE", "EXPECTED", "FINAL", "LOST", "SECONDS", "ns/INCREMENT")
	for _, r := range runs {
		lost := count(uint64(r.Lost))
		if r.Sync == shmlab.None {
			lost += fmt.Sprintf(" (%.1f%%)", 100*float64(r.Lost)/float64(r.Expected))
		}
		t.row(string(r.Sync), string(r.Mode), count(uint64(r.Expected)), count(uint64(r.Final)), lost,
			seconds(r.Elapsed), fmt.Sprintf("%.1f", nsPer(r)))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "none's LOST is what this run lost, not a property of the code: run it again and it changes.")
	fmt.Fprintf(w, "\n%s\n", counterVerdict(runs))
	return nil
}

func nsPer(r shmlab.CounterResult) float64 {
	return float64(r.Elapsed.Nanoseconds()) / float64(max(r.Expected, 1))
}

func counterVerdict(runs []shmlab.CounterResult) string {
	find := func(s shmlab.Sync, m shmlab.Mode) *shmlab.CounterResult {
		for i := range runs {
			if runs[i].Sync == s && runs[i].Mode == m {
				return &runs[i]
			}
		}
		return nil
	}
	v := "verdict:"
	if p, g := find(shmlab.None, shmlab.Procs), find(shmlab.None, shmlab.Goroutines); p != nil && g != nil {
		v += fmt.Sprintf(" unsynchronized, processes lost %s and goroutines %s of %s updates this time;",
			count(uint64(p.Lost)), count(uint64(g.Lost)), count(uint64(p.Expected)))
	}
	inexact := 0
	for _, r := range runs {
		if r.Sync != shmlab.None && r.Lost != 0 {
			inexact++
		}
	}
	if inexact > 0 {
		return v + fmt.Sprintf(" %d synchronized runs were NOT exact: that is a bug.", inexact)
	}
	if find(shmlab.Atomic, shmlab.Procs) != nil || find(shmlab.Lock, shmlab.Procs) != nil {
		v += " atomic and mutex counts were exact."
	}
	if p, g := find(shmlab.Lock, shmlab.Procs), find(shmlab.Lock, shmlab.Goroutines); p != nil && g != nil {
		v += fmt.Sprintf(" A contended futex mutex across processes cost %.1f ns per increment, sync.Mutex across goroutines %.1f ns (%.2fx).",
			nsPer(*p), nsPer(*g), nsPer(*p)/math.Max(nsPer(*g), 1e-9))
	}
	return v
}

type counterDoc struct {
	SchemaVersion int              `json:"schema_version"`
	Procs         int              `json:"procs"`
	Increments    int              `json:"increments"`
	System        system           `json:"system"`
	Runs          []counterRunJSON `json:"runs"`
}

type counterRunJSON struct {
	Sync           string  `json:"sync"`
	Mode           string  `json:"mode"`
	Workers        int     `json:"workers"`
	Expected       int64   `json:"expected"`
	Final          int64   `json:"final"`
	Lost           int64   `json:"lost"`
	Exact          bool    `json:"exact"`
	Seconds        float64 `json:"seconds"`
	NsPerIncrement float64 `json:"ns_per_increment"`
	PIDs           []int   `json:"pids,omitempty"`
}

func counterJSON(workers, increments int, runs []shmlab.CounterResult) counterDoc {
	doc := counterDoc{SchemaVersion: 1, Procs: workers, Increments: increments, System: thisSystem(), Runs: []counterRunJSON{}}
	for _, r := range runs {
		doc.Runs = append(doc.Runs, counterRunJSON{
			Sync: string(r.Sync), Mode: string(r.Mode), Workers: r.Workers, Expected: r.Expected, Final: r.Final,
			Lost: r.Lost, Exact: r.Lost == 0, Seconds: r.Elapsed.Seconds(), NsPerIncrement: nsPer(r), PIDs: r.PIDs,
		})
	}
	return doc
}

const shmSquareUsage = "shm square [--json] [NUMBER...]"

const shmSquareLong = `
The classic example of Python's multiprocessing Array and Value: the parent
writes the NUMBERs (default 1 to 10) into a shared float64 array, a child
process squares each into a second shared array and stores their sum in a
shared value, and the parent, once the child has exited, prints both. Each
array and the value carry a header the child checks before touching them.`

func runShmSquare(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "shm square", shmSquareUsage, shmSquareLong)
	asJSON := fs.Bool("json", false, "print one JSON document instead of a table")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	var nums []float64
	for _, s := range pos {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return usagef("%q is not a finite number", s)
		}
		nums = append(nums, x)
	}
	if len(nums) == 0 {
		for i := 1; i <= 10; i++ {
			nums = append(nums, float64(i))
		}
	}
	if len(nums) > shmlab.MaxSquare {
		return usagef("%d numbers: want at most %d", len(nums), shmlab.MaxSquare)
	}
	res, err := shmlab.Square(ctx, nums)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, struct {
			SchemaVersion int       `json:"schema_version"`
			Numbers       []float64 `json:"numbers"`
			Squares       []float64 `json:"squares"`
			Sum           float64   `json:"sum"`
			ChildPID      int       `json:"child_pid"`
		}{1, res.Numbers, res.Squares, res.Sum, res.PID})
	}
	w := env.stdout
	fmt.Fprintf(w, "shm square: child pid %d squared %d numbers in shared memory\n\n", res.PID, len(nums))
	t := newTable(w, "NUMBER", "SQUARE (shared array)")
	for i, x := range res.Numbers {
		t.row(num(x), num(res.Squares[i]))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "sum (shared value): %s\n", num(res.Sum))
	fmt.Fprintf(w, "\nverdict: the child wrote into memory the parent maps; nothing was copied or sent back.\n")
	return nil
}

func num(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

const shmBenchUsage = "shm bench [--size S] [--rounds R] [--json]"

const shmBenchLong = `
Moves S bytes (default 64MiB; sizes like 4096, 8M, 64MiB, 1GiB) from this
process to a child, and in-process for comparison:

  copy  copy() from one buffer to another in this process: the memory
        bandwidth bound.
  shm   the sender copies into a shared byte array the child maps; the
        child is told through a futex semaphore.
  pipe  the sender writes into a pipe (grown to 1 MiB), the child reads
        into its own buffer.
  msgpack  the sender sends 1 MiB msgpack values over a Unix socket
        (package ipc), the child decodes them into its own buffer.

A round's time runs until the bytes are in the child's memory and it has
said so. The child then checksums what it received, untimed, and the
sender compares: every round sends different bytes. The fastest of R
rounds is reported (the first round also pays for faulting fresh pages).`

func runShmBench(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "shm bench", shmBenchUsage, shmBenchLong)
	sizeText := fs.String("size", "64MiB", "bytes to move per round")
	rounds := fs.Int("rounds", 3, "rounds per path; the fastest is reported")
	asJSON := fs.Bool("json", false, "print one JSON document instead of a table")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	size, err := shmlab.ParseSize(*sizeText)
	if err != nil {
		return usagef("--%v", err)
	}
	if size < 1 || size > shmlab.MaxBenchSize {
		return usagef("--size %s: want 1B..%s", *sizeText, shmlab.FormatSize(shmlab.MaxBenchSize))
	}
	if *rounds < 1 || *rounds > 100 {
		return usagef("--rounds %d: want 1..100", *rounds)
	}
	prog := env.newProgress(!*asJSON)
	prog.set("shm bench: moving %s %d times per path", shmlab.FormatSize(size), *rounds)
	res, err := shmlab.Bench(ctx, shmlab.BenchConfig{Size: size, Rounds: *rounds})
	prog.done()
	if err != nil {
		return err
	}
	var copyTime time.Duration
	for _, r := range res {
		if r.Path == shmlab.PathCopy {
			copyTime = r.Elapsed
		}
	}
	var bad []string
	for _, r := range res {
		if !r.Verified {
			bad = append(bad, r.Path)
		}
	}
	if *asJSON {
		doc := benchDoc{SchemaVersion: 1, Bytes: size, Rounds: *rounds, System: thisSystem(), Paths: []benchPathJSON{}}
		for _, r := range res {
			doc.Paths = append(doc.Paths, benchPathJSON{
				Path: r.Path, Bytes: r.Bytes, Seconds: r.Elapsed.Seconds(), GBps: r.GBps(),
				OfCopy: float64(copyTime) / float64(max(r.Elapsed, 1)), Verified: r.Verified, PipeSize: r.PipeSize,
			})
		}
		if err := writeJSON(env.stdout, doc); err != nil {
			return err
		}
	} else if err := renderBench(env, size, *rounds, res, copyTime); err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("the bytes received through %v did not match what was sent", bad)
	}
	return nil
}

type benchDoc struct {
	SchemaVersion int             `json:"schema_version"`
	Bytes         int64           `json:"bytes"`
	Rounds        int             `json:"rounds"`
	System        system          `json:"system"`
	Paths         []benchPathJSON `json:"paths"`
}

type benchPathJSON struct {
	Path     string  `json:"path"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	GBps     float64 `json:"gbps"`
	OfCopy   float64 `json:"of_copy"` // this path's rate as a fraction of copy's
	Verified bool    `json:"verified"`
	PipeSize int     `json:"pipe_size,omitempty"`
}

func renderBench(env *env, size int64, rounds int, res []shmlab.BenchResult, copyTime time.Duration) error {
	w := env.stdout
	fmt.Fprintf(w, "shm bench: moving %s, fastest of %d rounds (%s)\n\n", shmlab.FormatSize(size), rounds, thisSystem())
	t := newTable(w, "PATH", "BYTES", "SECONDS", "GB/s", "OF COPY", "VERIFIED")
	rate := map[string]float64{}
	for _, r := range res {
		of := float64(copyTime) / float64(max(r.Elapsed, 1))
		rate[r.Path] = of
		verified := "checksum ok"
		if !r.Verified {
			verified = "MISMATCH"
		}
		path := r.Path
		if r.PipeSize > 0 {
			path += fmt.Sprintf(" (%s buffer)", shmlab.FormatSize(int64(r.PipeSize)))
		}
		t.row(path, count(uint64(r.Bytes)), seconds(r.Elapsed), fmt.Sprintf("%.2f", r.GBps()), fmt.Sprintf("%.0f%%", 100*of), verified)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nverdict: through a shared array the bytes moved at %.0f%% of an in-process copy (one copy into memory the child maps); "+
		"through a pipe at %.0f%% and msgpack over a socket at %.0f%% (two copies, through the kernel, in pieces): sharing was %.1fx faster than the pipe.\n",
		100*rate[shmlab.PathShm], 100*rate[shmlab.PathPipe], 100*rate[shmlab.PathMsgpack], rate[shmlab.PathShm]/math.Max(rate[shmlab.PathPipe], 1e-9))
	return nil
}
