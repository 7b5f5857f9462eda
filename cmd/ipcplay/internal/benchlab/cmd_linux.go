package benchlab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// The message sizes of the full matrix and of the quick one.
var (
	fullSizes  = []int64{8, 64, 512, 4 << 10, 32 << 10, 256 << 10, 1 << 20}
	quickSizes = []int64{64, 4 << 10, 256 << 10}
)

// Command returns the bench command.
func Command() *base.Command {
	cmd := &base.Command{
		UsageLine: "bench [flags]",
		Short:     "round-trip latency and throughput of every IPC mechanism, against goroutines",
		Long: `Measures each mechanism between two processes (this binary re-exec'd as the echo end) and each goroutine mechanism of the same shape, in one run, interleaved: for every message size, goroutine and process cells take turns, and right before each process cell an unbuffered channel's round trip and a buffered channel's throughput of the same size are measured (a tenth of --seconds each): the ratio tables set the cell against those, from the same moment.

Process mechanisms: pipe, unix (stream socket), seqpacket, dgram, tcp and udp (loopback), mq (POSIX message queues, raw system calls), queue (ipc.Queue), ring (shm.Ring, an SPSC ring per direction), shm-spin and shm-copy (a ring in a shared memfd: the sender copies each message in, the receiver copies it out; shm-spin's sides spin on a cache line, shm-copy's sleep on a futex and wake each other; both pre-fault the memfd's pages with madvise(MADV_POPULATE_WRITE) before timing), and three that carry only an 8-byte token: eventfd, futex (a futex word in a shared memfd) and signal (a queued real-time signal). Goroutine mechanisms: chan, chan-buf, cond, mutex, spin, and copy-ring (shm-copy's ring and futex hand-off between two goroutines: from 32 KiB it is measured beside each shm-copy cell, the in-process copy that cell is set against).

Each cell warms up for a tenth of --seconds, estimates one round trip from the warm-up and times enough round trips to fill --seconds, one clock read on each side of each, into a log-linear histogram (p50, p99, p99.9, max; a p99.9 from fewer than 10,000 round trips is marked). The round trips are cut into 5 repetitions whose medians give the spread and feed 'ipcplay compare'. Then one-way throughput: batches of up to 64 messages (64 KiB at most) each ended by a one-byte acknowledgement, for half of --seconds. The cost of the clock itself is measured and printed, not subtracted.

When a C compiler (cc, gcc or clang) is on the PATH, the C references testdata/pipes-pingpong.c and testdata/shm-spin-pingpong.c are built into a temporary directory (removed after) and run three times each, taking turns with ours: c-pipe against our pipe round trip of 1 byte and our throughput through a 1 MiB pipe, c-shm-spin against our shm-spin round trip (when shm-spin runs); the report gives ours/C, the median and the range. --no-c skips them.

The default is a quick matrix (64 B, 4 KiB, 256 KiB; every mechanism but shm-spin, whose spinning sides on a loaded 2-CPU machine mostly measure preemption, and copy-ring, which runs beside shm-copy) that takes under a minute on 2 cores; --full runs every size from 8 B to 1 MiB. Unpinned by default; --placement same-cpu pins both ends (the measuring goroutine's thread, locked, and the echo thread) to one CPU, two-cpus to two.

Examples:
  ipcplay bench
  ipcplay bench --mech pipe,unix,chan --size 64,64K --seconds 1s
  ipcplay bench --full --json > run.json
  ipcplay bench --check-perf --placement same-cpu
  ipcplay bench --mech pipe,shm-spin --size 64K --no-c`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	full := f.Bool("full", false, "every mechanism at every size from 8 B to 1 MiB")
	mech := f.String("mech", "", "mechanisms to run (comma-separated): "+strings.Join(mechNames(), ", "))
	sizes := base.SizesFlag(f, "size", nil, 1, 1<<20, "message sizes (default 64,4K,256K; --full: 8 B to 1 MiB)")
	place := base.ChoiceFlag(f, "placement", "unpinned", []string{"unpinned", "same-cpu", "two-cpus"}, "where the two ends run")
	seconds := base.SecondsFlag(f, 300*time.Millisecond)
	noC := f.Bool("no-c", false, "skip the C references (c-pipe, c-shm-spin), which run when a C compiler is present")
	perf := f.Bool("check-perf", false, "also run 'perf bench sched pipe' and our pipe round trip in turns, placed alike, and report mean against mean and the cost of a round trip to each")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		cfg := Config{Budget: *seconds, CheckPerf: *perf, Full: *full, NoC: *noC}
		var err error
		if cfg.Mechs, err = parseMechs(*mech); err != nil {
			return err
		}
		if len(cfg.Mechs) == 0 && !*full {
			for _, m := range mechs {
				if m.Quick {
					cfg.Mechs = append(cfg.Mechs, m)
				}
			}
		} else if len(cfg.Mechs) == 0 {
			cfg.Mechs = Mechs()
		}
		cfg.Sizes = *sizes
		if len(cfg.Sizes) == 0 {
			cfg.Sizes = quickSizes
			if *full {
				cfg.Sizes = fullSizes
			}
		}
		if cfg.Placement, err = placement(*place); err != nil {
			return err
		}
		return run(ctx, env, out, cfg)
	}
	return cmd
}

// Config is one run's settings.
type Config struct {
	Mechs     []Mech
	Sizes     []int64
	Placement Placement
	Budget    time.Duration
	CheckPerf bool
	Full      bool
	NoC       bool // skip the C references
}

func parseMechs(s string) ([]Mech, error) {
	if s == "" {
		return nil, nil
	}
	var ms []Mech
	for _, n := range strings.Split(s, ",") {
		m, ok := lookupMech(strings.TrimSpace(n))
		if !ok {
			if g := base.Suggest(n, mechNames()); g != "" {
				return nil, base.Usagef("--mech %s: did you mean %q? want %s", n, g, strings.Join(mechNames(), ", "))
			}
			return nil, base.Usagef("--mech %s: want %s", n, strings.Join(mechNames(), ", "))
		}
		if !slices.ContainsFunc(ms, func(x Mech) bool { return x.Name == m.Name }) {
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// placement resolves a placement name to CPUs of this process's affinity
// mask; a placement the machine cannot do is a usage error.
func placement(name string) (Placement, error) {
	p := Placement{Name: name, Self: -1, Other: -1}
	if name == "unpinned" {
		return p, nil
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return p, fmt.Errorf("read CPU affinity: %w", err)
	}
	var cpus []int
	for i := range 1024 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	switch {
	case len(cpus) == 0:
		return p, fmt.Errorf("no CPU in this process's affinity mask")
	case name == "same-cpu":
		p.Self, p.Other = cpus[0], cpus[0]
	case len(cpus) < 2:
		return p, base.Usagef("--placement two-cpus: this process may run on one CPU only (%d)", cpus[0])
	default:
		p.Self, p.Other = cpus[0], cpus[1]
	}
	return p, nil
}

// plan lists the cells in the order they run: for each size, goroutine
// and process cells take turns; notification mechanisms run once, at
// their one size, before the first size.
func plan(cfg Config) [][2]any {
	var cells [][2]any // Mech, size
	var proc, gor []Mech
	for _, m := range cfg.Mechs {
		switch {
		case m.Notify:
			if len(cells) == 0 && !slices.Contains(cfg.Sizes, notifySize) {
				// The baseline of a wake-up: a channel round trip of
				// the token's size.
				ch, _ := lookupMech("chan")
				cells = append(cells, [2]any{ch, notifySize})
			}
			cells = append(cells, [2]any{m, notifySize})
		case m.Impl == Process:
			proc = append(proc, m)
		default:
			gor = append(gor, m)
		}
	}
	for _, s := range cfg.Sizes {
		for i := range max(len(proc), len(gor)) {
			if i < len(gor) {
				cells = append(cells, [2]any{gor[i], int(s)})
			}
			if i < len(proc) {
				cells = append(cells, [2]any{proc[i], int(s)})
			}
		}
	}
	return cells
}

// Run measures the cells of cfg and returns them in plan order, with the
// clock's cost. progress, when not nil, is told each cell before it runs.
func Run(ctx context.Context, cfg Config, progress func(done, total int, m Mech, size int)) ([]*Cell, time.Duration, error) {
	clock := clockCost()
	var out []*Cell
	cells := plan(cfg)
	for i, pc := range cells {
		m, size := pc[0].(Mech), pc[1].(int)
		if progress != nil {
			progress(i, len(cells), m, size)
		}
		if why := limit(m, size); why != "" {
			out = append(out, &Cell{Mech: m, Size: size, Placement: cfg.Placement.Name, Skip: why})
			continue
		}
		beside, err := measureBeside(ctx, cfg, m, size)
		if err != nil {
			return out, clock, err
		}
		o := Options{Budget: cfg.Budget, Cost: int64(size) == cfg.Sizes[0] || m.Notify}
		c, err := measure(ctx, m, size, cfg.Placement, o)
		if err != nil {
			return out, clock, err
		}
		c.Beside = beside
		out = append(out, c)
	}
	return out, clock, nil
}

// besideShare is the part of --seconds a baseline measured beside a
// process cell gets: enough for a median, cheap enough for every cell.
const besideShare = 10

// measureBeside measures the goroutine baselines of process cell m at
// size right before it: a channel's round trip only, a buffered channel's
// throughput only, each for a tenth of the budget.
func measureBeside(ctx context.Context, cfg Config, m Mech, size int) (map[string]*Cell, error) {
	names := besides(m, size)
	if len(names) == 0 {
		return nil, nil
	}
	out := map[string]*Cell{}
	for _, name := range names {
		b, _ := lookupMech(name)
		o := Options{Budget: max(cfg.Budget/besideShare, time.Millisecond)}
		switch name {
		case baseline("p50"):
			o.Phase = phaseLat
		case baseline("thr"):
			o.Phase = phaseThr
		}
		c, err := measure(ctx, b, size, cfg.Placement, o)
		if err != nil {
			return nil, fmt.Errorf("baseline beside %s: %w", m.Name, err)
		}
		out[name] = c
	}
	return out, nil
}

func run(ctx context.Context, env *base.Env, out *base.Output, cfg Config) error {
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	cells, clock, err := Run(ctx, cfg, func(done, total int, m Mech, size int) {
		prog.Set(float64(done), float64(total), "bench: %s %s (%d of %d)", m.label(), sizeName(size), done+1, total)
	})
	if err != nil {
		return err
	}
	var ref *cRef
	if !cfg.NoC {
		prog.Set(float64(len(cells)), float64(len(cells)), "bench: the C references and ours, taking turns")
		ref = runCRefs(ctx, cfg)
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
	}
	var pc *perfCheck
	if cfg.CheckPerf {
		prog.Set(0, 0, "bench: perf bench sched pipe and our pipe, taking turns")
		pc = checkPerf(ctx, cfg)
	}
	prog.Done()
	return report.Write(env, out, buildReport(cfg, cells, clock, pc, ref))
}
