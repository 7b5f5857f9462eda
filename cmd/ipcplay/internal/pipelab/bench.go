package pipelab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"ipcplay/procs/cost"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/pipes"
	"ipcplay/procs"
)

// Modes of a benchmark run.
const (
	ModeProcs      = "procs"
	ModeGoroutines = "goroutines"
)

// Goroutine paths.
const (
	PathChan   = "chan"    // unbuffered channels (ping-pong) or a channel of []byte
	PathIOPipe = "io.Pipe" // io.Pipe, throughput only
)

// BenchRun is one measured benchmark.
type BenchRun struct {
	Test     string // "pingpong" or "throughput"
	Path     string // PathFile, PathRaw, PathChan or PathIOPipe
	Mode     string // ModeProcs or ModeGoroutines
	PipeSize int    // capacity of the pipes used; 0 for goroutines

	// Ping-pong.
	Rounds    int
	RTTMedian time.Duration
	RTTP99    time.Duration
	RTTMean   time.Duration
	// Cost is what the processes involved spent per round trip (system
	// calls, context switches, CPU), warm-up included (procs/cost).
	Cost    cost.Breakdown
	HasCost bool

	// Throughput.
	Bytes   int64
	Chunk   int
	Elapsed time.Duration

	// Note says how the run differs from the plain one, and Skipped why
	// it could not run on this system ("" if it ran).
	Note    string
	Skipped string
}

// GBps is the throughput in 10^9 bytes per second.
func (r BenchRun) GBps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Elapsed.Seconds() / 1e9
}

// benchChild is a BenchRole child with the parent's ends of its two pipes.
type benchChild struct {
	cmd      *procs.Cmd
	toChild  endpoint // the child's stdin
	fromChld endpoint // the child's stdout
	closeFns []func()
	pipeSize int
}

func (c *benchChild) closeEnds() {
	for _, f := range c.closeFns {
		f()
	}
	c.closeFns = nil
}

// startBench starts a BenchRole child with blocking pipes as stdin and
// stdout, resized to pipeSize if it is positive. The parent's ends are
// raw blocking descriptors for PathRaw, and non-blocking *os.Files (in the
// poller) for PathFile.
func startBench(ctx context.Context, path string, pipeSize int, args ...string) (_ *benchChild, err error) {
	var to, from [2]int
	if err := unix.Pipe2(to[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	if err := unix.Pipe2(from[:], unix.O_CLOEXEC); err != nil {
		unix.Close(to[0])
		unix.Close(to[1])
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	childIn, childOut := os.NewFile(uintptr(to[0]), "child-stdin"), os.NewFile(uintptr(from[1]), "child-stdout")
	defer childIn.Close()
	defer childOut.Close()
	c := &benchChild{}
	defer func() {
		if err != nil {
			c.closeEnds()
		}
	}()
	switch path {
	case PathRaw:
		c.toChild, c.fromChld = rawFD(to[1]), rawFD(from[0])
		c.closeFns = append(c.closeFns, func() { unix.Close(to[1]) }, func() { unix.Close(from[0]) })
	case PathFile:
		for _, fd := range []int{to[1], from[0]} {
			if err := unix.SetNonblock(fd, true); err != nil {
				unix.Close(to[1])
				unix.Close(from[0])
				return nil, fmt.Errorf("set non-blocking: %w", err)
			}
		}
		w, r := os.NewFile(uintptr(to[1]), "to-child"), os.NewFile(uintptr(from[0]), "from-child")
		c.toChild, c.fromChld = w, r
		c.closeFns = append(c.closeFns, func() { w.Close() }, func() { r.Close() })
	default:
		unix.Close(to[1])
		unix.Close(from[0])
		return nil, fmt.Errorf("unknown path %q", path)
	}
	if pipeSize > 0 {
		for _, f := range []*os.File{childIn, childOut} {
			if _, err := pipes.Resize(f, pipeSize); err != nil {
				return nil, err
			}
		}
	}
	if c.pipeSize, err = pipes.Capacity(childOut); err != nil {
		return nil, err
	}
	cmd := procs.Command(ctx, BenchRole, append([]string{"-path", path}, args...)...)
	cmd.Stdin, cmd.Stdout = childIn, childOut
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.cmd = cmd
	return c, nil
}

// finish closes the parent's ends and reaps the child.
func (c *benchChild) finish() error {
	c.closeEnds()
	return c.cmd.Wait()
}

// warmup is how many round trips are made before measuring.
const warmup = 200

// PingPongProcs measures rounds 1-byte round trips with a child over two
// pipes, both sides using path.
func PingPongProcs(ctx context.Context, path string, rounds int) (BenchRun, error) {
	c, err := startBench(ctx, path, 0, "-test", "pingpong")
	if err != nil {
		return BenchRun{}, err
	}
	run := BenchRun{Test: "pingpong", Path: path, Mode: ModeProcs, PipeSize: c.pipeSize, Rounds: rounds}
	ctr, cerr := cost.Start(c.cmd.Pid(), os.Getpid())
	samples, err := pingPong(path == PathRaw, rounds, func(b []byte) error {
		if _, err := c.toChild.Write(b); err != nil {
			return err
		}
		_, err := io.ReadFull(c.fromChld, b)
		return err
	})
	if cerr == nil {
		if s, err := ctr.Stop(); err == nil {
			run.Cost, run.HasCost = s.Per(uint64(rounds+warmup)), true
		}
		ctr.Close()
	}
	if werr := c.finish(); err == nil {
		err = werr
	}
	if err != nil {
		return run, fmt.Errorf("pingpong %s: %w", path, err)
	}
	run.stats(samples)
	return run, nil
}

// PingPongGoroutines measures rounds round trips between two goroutines
// over unbuffered channels.
func PingPongGoroutines(rounds int) BenchRun {
	ping, pong := make(chan byte), make(chan byte)
	ctr, cerr := cost.Start(os.Getpid())
	var wg sync.WaitGroup
	wg.Go(func() {
		for b := range ping {
			pong <- b
		}
	})
	samples, _ := pingPong(false, rounds, func(b []byte) error {
		ping <- b[0]
		b[0] = <-pong
		return nil
	})
	close(ping)
	wg.Wait()
	run := BenchRun{Test: "pingpong", Path: PathChan, Mode: ModeGoroutines, Rounds: rounds}
	if cerr == nil {
		if s, err := ctr.Stop(); err == nil {
			run.Cost, run.HasCost = s.Per(uint64(rounds+warmup)), true
		}
		ctr.Close()
	}
	run.stats(samples)
	return run
}

func pingPong(lock bool, rounds int, trip func([]byte) error) ([]time.Duration, error) {
	if lock {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	b := []byte{'p'}
	for range warmup {
		if err := trip(b); err != nil {
			return nil, err
		}
	}
	samples := make([]time.Duration, rounds)
	for i := range samples {
		t0 := time.Now()
		if err := trip(b); err != nil {
			return nil, err
		}
		samples[i] = time.Since(t0)
	}
	return samples, nil
}

func (r *BenchRun) stats(samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	slices.Sort(samples)
	r.RTTMedian = samples[len(samples)/2]
	r.RTTP99 = samples[min(len(samples)-1, len(samples)*99/100)]
	r.RTTMean = sum / time.Duration(len(samples))
}

// ThroughputProcs measures a child writing n bytes in chunk-sized writes
// to a pipe of pipeSize bytes (0: the default) that the parent reads with
// chunk-sized reads, both sides using path.
func ThroughputProcs(ctx context.Context, path string, pipeSize int, n int64, chunk int) (BenchRun, error) {
	return throughput(ctx, path, path, pipeSize, n, chunk, false, HugeNone)
}

// Zero-copy throughput variants, all on the raw path.
const (
	// PathVmsplice: the writer hands its pages to the pipe with
	// vmsplice(2) instead of copying them with write(2); the reader reads.
	PathVmsplice = "vmsplice"
	// PathVmspliceSplice: the reader also splices the pipe's pages to
	// /dev/null instead of reading them: the data never reaches its
	// memory, so this is the ceiling of a pipe, not a usable transfer.
	PathVmspliceSplice = "vmsplice+splice"
	// PathVmspliceSpliceHuge: as PathVmspliceSplice, with the writer's
	// buffer on huge pages (see HugeBacking).
	PathVmspliceSpliceHuge = "vmsplice+splice+hugepages"
)

// ZeroCopyPaths lists the zero-copy variants in the order the lab runs them.
func ZeroCopyPaths() []string {
	return []string{PathVmsplice, PathVmspliceSplice, PathVmspliceSpliceHuge}
}

// HugeBacking says how the system can give a process huge pages: HugeTLB
// if the reserved pool has free pages, HugeTHP if transparent huge pages
// are enabled (always or madvise), and an error otherwise.
func HugeBacking() (string, error) {
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "HugePages_Free:"); ok {
				if n, _ := strconv.Atoi(strings.TrimSpace(rest)); n > 0 {
					return HugeTLB, nil
				}
			}
		}
	}
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return "", fmt.Errorf("no huge pages: no free hugetlb pages and %w", err)
	}
	if strings.Contains(string(b), "[never]") {
		return "", errors.New("no huge pages: no free hugetlb pages and transparent huge pages are off")
	}
	return HugeTHP, nil
}

// ThroughputZeroCopy is ThroughputProcs on the raw path with one of the
// zero-copy variants (PathVmsplice and its siblings).
func ThroughputZeroCopy(ctx context.Context, variant string, pipeSize int, n int64, chunk int) (BenchRun, error) {
	huge := HugeNone
	switch variant {
	case PathVmsplice, PathVmspliceSplice:
	case PathVmspliceSpliceHuge:
		var err error
		if huge, err = HugeBacking(); err != nil {
			return BenchRun{Test: "throughput", Path: variant, Mode: ModeProcs, Skipped: err.Error()}, nil
		}
	default:
		return BenchRun{}, fmt.Errorf("unknown zero-copy variant %q", variant)
	}
	return throughput(ctx, variant, PathRaw, pipeSize, n, chunk, variant != PathVmsplice, huge)
}

func throughput(ctx context.Context, name, path string, pipeSize int, n int64, chunk int, splice bool, huge string) (BenchRun, error) {
	args := []string{"-test", "throughput", "-bytes", strconv.FormatInt(n, 10), "-chunk", strconv.Itoa(chunk), "-huge", huge}
	if name != path {
		args = append(args, "-writer", "vmsplice")
	}
	run := BenchRun{Test: "throughput", Path: name, Mode: ModeProcs, Bytes: n, Chunk: chunk}
	if huge != HugeNone {
		run.Note = "buffer on " + huge + " huge pages"
	}
	var sink int = -1
	if splice {
		fd, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return run, fmt.Errorf("open /dev/null: %w", err)
		}
		sink = fd
		defer unix.Close(sink)
		run.Note = strings.TrimPrefix(run.Note+"; reader splices to /dev/null", "; ")
	}
	c, err := startBench(ctx, path, pipeSize, args...)
	if err != nil {
		return run, err
	}
	run.PipeSize = c.pipeSize
	run.Elapsed, err = func() (time.Duration, error) {
		if path == PathRaw {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		buf := make([]byte, chunk)
		start := time.Now()
		if _, err := c.toChild.Write([]byte{'g'}); err != nil {
			return 0, err
		}
		for got := int64(0); got < n; {
			var k int
			var err error
			if splice {
				k, err = spliceOnce(int(c.fromChld.(rawFD)), sink, chunk)
			} else {
				k, err = c.fromChld.Read(buf)
			}
			got += int64(k)
			if err != nil {
				return 0, fmt.Errorf("after %d bytes: %w", got, err)
			}
		}
		return time.Since(start), nil
	}()
	werr := c.finish()
	if reason, ok := hugeRefusal(huge, werr); ok {
		// The system refused the huge pages for a documented reason: a
		// fact about it, not a failure. Any other error fails the run.
		run.Elapsed, run.Skipped = 0, reason
		return run, nil
	}
	if err == nil {
		err = werr
	}
	if err != nil {
		return run, fmt.Errorf("throughput %s: %w", name, err)
	}
	return run, nil
}

// hugeRefusal reports whether err is a BenchRole child's exit after a
// documented huge-page refusal (exitHugeRefused), and the refusal it gave.
func hugeRefusal(huge string, err error) (string, bool) {
	ce, ok := errors.AsType[*procs.ChildError](err)
	if huge == HugeNone || !ok || ce.ExitCode != exitHugeRefused {
		return "", false
	}
	line := strings.TrimSpace(string(ce.Stderr))
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	return strings.TrimPrefix(line, BenchRole+": "), true
}

func spliceOnce(from, to, n int) (int, error) {
	for {
		k, err := unix.Splice(from, nil, to, nil, n, unix.SPLICE_F_MOVE)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("splice: %w", err)
		}
		if k == 0 {
			return 0, io.EOF
		}
		return int(k), nil
	}
}

// ThroughputGoroutines moves n bytes in chunk-sized pieces between two
// goroutines, through io.Pipe (PathIOPipe) or an unbuffered channel of
// []byte whose receiver copies each piece out (PathChan): one copy per
// byte, as io.Pipe does.
func ThroughputGoroutines(path string, n int64, chunk int) (BenchRun, error) {
	run := BenchRun{Test: "throughput", Path: path, Mode: ModeGoroutines, Bytes: n, Chunk: chunk}
	src, dst := make([]byte, chunk), make([]byte, chunk)
	var wg sync.WaitGroup
	start := time.Now()
	switch path {
	case PathIOPipe:
		pr, pw := io.Pipe()
		wg.Go(func() {
			for left := n; left > 0; {
				k, err := pw.Write(src[:min(int64(chunk), left)])
				left -= int64(k)
				if err != nil {
					return
				}
			}
			pw.Close()
		})
		got, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{pr}, dst)
		wg.Wait()
		if err != nil || got != n {
			return run, fmt.Errorf("io.Pipe: %d of %d bytes: %v", got, n, err)
		}
	case PathChan:
		ch := make(chan []byte)
		wg.Go(func() {
			for left := n; left > 0; left -= int64(chunk) {
				ch <- src[:min(int64(chunk), left)]
			}
			close(ch)
		})
		var got int64
		for p := range ch {
			got += int64(copy(dst, p))
		}
		wg.Wait()
		if got != n {
			return run, fmt.Errorf("chan: %d of %d bytes", got, n)
		}
	default:
		return run, errors.New("unknown goroutine path " + path)
	}
	run.Elapsed = time.Since(start)
	return run, nil
}

// BenchConfig sizes `ipcplay pipes bench`.
type BenchConfig struct {
	Rounds int   // ping-pong round trips per run
	Bytes  int64 // bytes per throughput run
	// Chunks are the write sizes for throughput, each measured on every
	// path; nil means 64 KiB alone.
	Chunks []int
	// BigPipe is the larger pipe size for throughput; zero means 1 MiB or
	// the system maximum if lower.
	BigPipe int
}

// Bench runs every benchmark of the lab, one after the other. Progress, if
// not nil, is told which one is about to run.
func Bench(ctx context.Context, cfg BenchConfig, progress func(string)) ([]BenchRun, error) {
	if len(cfg.Chunks) == 0 {
		cfg.Chunks = []int{64 << 10}
	}
	if cfg.BigPipe <= 0 {
		max, err := pipes.MaxSize()
		if err != nil {
			return nil, err
		}
		cfg.BigPipe = min(1<<20, max)
	}
	say := func(s string) {
		if progress != nil {
			progress(s)
		}
	}
	var runs []BenchRun
	for _, path := range []string{PathRaw, PathFile} {
		say("pingpong procs " + path)
		r, err := PingPongProcs(ctx, path, cfg.Rounds)
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
	}
	say("pingpong goroutines")
	runs = append(runs, PingPongGoroutines(cfg.Rounds))
	for _, chunk := range cfg.Chunks {
		for _, size := range []int{0, cfg.BigPipe} {
			for _, path := range []string{PathRaw, PathFile} {
				say(fmt.Sprintf("throughput procs %s pipe %d, %d-byte writes", path, size, chunk))
				r, err := ThroughputProcs(ctx, path, size, cfg.Bytes, chunk)
				if err != nil {
					return runs, err
				}
				runs = append(runs, r)
			}
		}
		for _, variant := range ZeroCopyPaths() {
			say(fmt.Sprintf("throughput procs %s pipe %d, %d-byte writes", variant, cfg.BigPipe, chunk))
			r, err := ThroughputZeroCopy(ctx, variant, cfg.BigPipe, cfg.Bytes, chunk)
			if err != nil {
				return runs, err
			}
			runs = append(runs, r)
		}
		for _, path := range []string{PathIOPipe, PathChan} {
			say(fmt.Sprintf("throughput goroutines %s, %d-byte writes", path, chunk))
			r, err := ThroughputGoroutines(path, cfg.Bytes, chunk)
			if err != nil {
				return runs, err
			}
			runs = append(runs, r)
		}
		if err := ctx.Err(); err != nil {
			return runs, context.Cause(ctx)
		}
	}
	return runs, ctx.Err()
}
