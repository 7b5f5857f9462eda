package benchlab

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/procs"
)

// The C references: copies of testdata/pipes-pingpong.c and
// testdata/shm-spin-pingpong.c (a test keeps them equal), built when a C
// compiler is present and run in the same bench run as our pipe and
// shm-spin cells.
//
//go:embed csrc/pipes-pingpong.c csrc/shm-spin-pingpong.c
var csrc embed.FS

// cRefReps is how many times each reference and its counterpart of ours
// run, taking turns: the ratios are reported as a median and a range.
const cRefReps = 3

// The references' sizes: C's round trips carry 1 byte (pipe) and a
// counter (spin); the throughput moves some MiB in 64 KiB writes through
// a 1 MiB pipe. Their counts follow --seconds (the figures for the
// default of 300ms: 5,000 pipe round trips, 3,000 spin round trips after
// the program's own 1,300 warm-up ones, 30 MiB), so that a short run
// stays short; each run is stopped after cRefTimeout.
const cStreamKiB = 64

func cPipeRounds(budget time.Duration) int {
	return min(max(int(budget/(60*time.Microsecond)), 100), 5000)
}

func cSpinRounds(budget time.Duration) int {
	return min(max(int(budget/(100*time.Microsecond)), 500), 3000)
}

// cRefTimeout bounds one run of a C reference: two processes spinning on
// a loaded machine can take a time slice per round trip.
func cRefTimeout(budget time.Duration) time.Duration { return max(10*budget, time.Second) }

func cStreamMiB(budget time.Duration) int { return min(max(int(budget/(10*time.Millisecond)), 4), 64) }

// cRef is the reference comparison of one run.
type cRef struct {
	Skip      string // why it did not run at all
	Compiler  string
	StreamMiB int      // the throughput's MiB
	Pipe      *cRefRow // pipe round trip: C against our pipe cell of 1 byte
	Spin      *cRefRow // spin round trip: C against our shm-spin cell of 8 bytes
	Thr       *cRefRow // 1 MiB pipe throughput: C against ours, GB/s
}

// cRefRow is one comparison: each repetition's C and our figure (ns for a
// round trip, bytes per second for throughput).
type cRefRow struct {
	Skip    string
	C, Ours []float64
}

// ratios returns ours/C of each repetition.
func (r *cRefRow) ratios() []float64 {
	var xs []float64
	for i := range min(len(r.C), len(r.Ours)) {
		if r.C[i] > 0 {
			xs = append(xs, r.Ours[i]/r.C[i])
		}
	}
	return xs
}

// cCompiler returns the C compiler's path, or why there is none.
func cCompiler() (string, string) {
	for _, name := range []string{"cc", "gcc", "clang"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, ""
		}
	}
	return "", "no C compiler (cc, gcc or clang) on PATH"
}

// buildC compiles the embedded source name into dir and returns the
// binary's path.
func buildC(ctx context.Context, cc, dir, name string) (string, error) {
	src, err := csrc.ReadFile("csrc/" + name + ".c")
	if err != nil {
		return "", err
	}
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, src, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	bin := filepath.Join(dir, name)
	if out, err := exec.CommandContext(ctx, cc, "-O2", "-o", bin, c).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w: %s", name, err, lastLine(out))
	}
	return bin, nil
}

var (
	cPipeRTT = regexp.MustCompile(`C pingpong median ([0-9.]+) us`)
	cPipeThr = regexp.MustCompile(`C throughput pipe 1048576 bytes, [0-9]+-byte writes: ([0-9.]+) GB/s`)
	cSpinRTT = regexp.MustCompile(`C spin pingpong rounds [0-9]+ median ([0-9]+) ns`)
)

// runC runs a reference binary and returns the number re's group matched,
// times scale.
func runC(ctx context.Context, timeout time.Duration, re *regexp.Regexp, scale float64, args ...string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.WaitDelay = 5 * time.Second
	// The references fork: the C child is not ours to wait for, and a
	// spinning one outlives its parent (it waits for ever for the next
	// ping). Its own process group, killed whole on cancel and after
	// the run, leaves nothing behind.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	out, err := cmd.Output()
	if cmd.Process != nil {
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL) // ESRCH when all ended
	}
	if ctx.Err() != nil {
		return 0, fmt.Errorf("%s: not done after %v (a loaded machine?)", filepath.Base(args[0]), timeout)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Base(args[0]), err)
	}
	m := re.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%s printed no figure: %s", filepath.Base(args[0]), lastLine(out))
	}
	x, err := strconv.ParseFloat(string(m[1]), 64)
	return x * scale, err
}

// runCRefs builds the references and runs each, taking turns with ours,
// cRefReps times: pipe round trips when pipe is among the mechanisms,
// spin round trips when shm-spin is.
func runCRefs(ctx context.Context, cfg Config) *cRef {
	ref := &cRef{StreamMiB: cStreamMiB(cfg.Budget)}
	hasPipe := slices.ContainsFunc(cfg.Mechs, func(m Mech) bool { return m.Name == "pipe" })
	hasSpin := slices.ContainsFunc(cfg.Mechs, func(m Mech) bool { return m.Name == "shm-spin" })
	if !hasPipe && !hasSpin {
		return nil
	}
	cc, why := cCompiler()
	if cc == "" {
		ref.Skip = why
		return ref
	}
	ref.Compiler = cc
	dir, err := os.MkdirTemp("", "ipcplay-bench-c-")
	if err != nil {
		ref.Skip = err.Error()
		return ref
	}
	defer os.RemoveAll(dir)
	var taskset []string
	switch cfg.Placement.Name {
	case "same-cpu":
		taskset = []string{"taskset", "-c", strconv.Itoa(cfg.Placement.Self)}
	case "two-cpus":
		taskset = []string{"taskset", "-c", fmt.Sprintf("%d,%d", cfg.Placement.Self, cfg.Placement.Other)}
	}
	budget := max(cfg.Budget/3, 10*time.Millisecond)
	if hasPipe {
		ref.Pipe, ref.Thr = &cRefRow{}, &cRefRow{}
		bin, err := buildC(ctx, cc, dir, "pipes-pingpong")
		if err != nil {
			ref.Pipe.Skip, ref.Thr.Skip = err.Error(), err.Error()
		}
		pipe, _ := lookupMech("pipe")
		for i := 0; i < cRefReps && err == nil; i++ {
			var c float64
			c, err = runC(ctx, cRefTimeout(cfg.Budget), cPipeRTT, 1e3, append(taskset, bin, strconv.Itoa(cPipeRounds(cfg.Budget)), "1", "64", "rtt")...)
			if err != nil {
				break
			}
			var cell *Cell
			cell, err = measure(ctx, pipe, 1, cfg.Placement, Options{Budget: budget, Phase: phaseLat})
			if err != nil {
				break
			}
			ref.Pipe.C = append(ref.Pipe.C, c)
			ref.Pipe.Ours = append(ref.Pipe.Ours, float64(cell.Lat.Quantile(0.5)))
			if c, err = runC(ctx, cRefTimeout(cfg.Budget), cPipeThr, 1e9, append(taskset, bin, "100", strconv.Itoa(ref.StreamMiB), strconv.Itoa(cStreamKiB), "thr1m")...); err != nil {
				break
			}
			var ours float64
			if ours, err = pipeStream(ctx, ref.StreamMiB<<20, cStreamKiB<<10, cfg.Placement); err != nil {
				break
			}
			ref.Thr.C = append(ref.Thr.C, c)
			ref.Thr.Ours = append(ref.Thr.Ours, ours)
		}
		if err != nil && ref.Pipe.Skip == "" {
			ref.Pipe.Skip, ref.Thr.Skip = err.Error(), err.Error()
		}
	}
	if hasSpin {
		ref.Spin = &cRefRow{}
		bin, err := buildC(ctx, cc, dir, "shm-spin-pingpong")
		spin, _ := lookupMech("shm-spin")
		args := []string{bin, strconv.Itoa(cSpinRounds(cfg.Budget))}
		if cfg.Placement.Self >= 0 {
			args = append(args, strconv.Itoa(cfg.Placement.Self), strconv.Itoa(cfg.Placement.Other))
		}
		for i := 0; i < cRefReps && err == nil; i++ {
			var c float64
			if c, err = runC(ctx, cRefTimeout(cfg.Budget), cSpinRTT, 1, args...); err != nil {
				break
			}
			var cell *Cell
			if cell, err = measure(ctx, spin, notifySize, cfg.Placement, Options{Budget: budget, Phase: phaseLat}); err != nil {
				break
			}
			ref.Spin.C = append(ref.Spin.C, c)
			ref.Spin.Ours = append(ref.Spin.Ours, float64(cell.Lat.Quantile(0.5)))
		}
		if err != nil {
			ref.Spin.Skip = err.Error()
		}
	}
	return ref
}

// pipeStream is ours of the C throughput: a child writes total bytes in
// chunk-byte writes into a pipe grown to 1 MiB, timed from the byte that
// tells it to start (sent once it has said it is ready) until this side
// has read them all. It returns bytes
// per second.
func pipeStream(ctx context.Context, total, chunk int, pl Placement) (float64, error) {
	var q, start [2]int
	if err := unix.Pipe2(q[:], unix.O_CLOEXEC); err != nil {
		return 0, os.NewSyscallError("pipe2", err)
	}
	if err := unix.Pipe2(start[:], unix.O_CLOEXEC); err != nil {
		closeFDs(q[0], q[1])
		return 0, os.NewSyscallError("pipe2", err)
	}
	defer closeFDs(q[0], start[1])
	if _, err := unix.FcntlInt(uintptr(q[1]), unix.F_SETPIPE_SZ, 1<<20); err != nil {
		closeFDs(q[1], start[0])
		return 0, fmt.Errorf("grow the pipe to 1 MiB: %w", os.NewSyscallError("fcntl F_SETPIPE_SZ", err))
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := procs.Command(cctx, EchoRole, "-mech", "pipe-stream", "-size", strconv.Itoa(chunk),
		"-stream", strconv.Itoa(total), "-cpu", strconv.Itoa(pl.Other))
	cmd.SetFile(procs.FDExtra, newFile(q[1], "stream w"))
	cmd.SetFile(procs.FDExtra+1, newFile(start[0], "stream start"))
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start pipe-stream writer: %w", err)
	}
	rate, err := func() (float64, error) {
		if pl.Self >= 0 {
			unlock, err := lockAndPin(pl.Self)
			if err != nil {
				return 0, err
			}
			defer unlock()
		}
		buf := make([]byte, chunk)
		for i := range buf {
			buf[i] = 'a' // fault its pages in now, as the C program's memset does
		}
		// The child says it is ready with one byte before the clock starts:
		// a forked C child is ready at once, an exec'd Go child only after
		// exec and the runtime's start-up, which the clock once included
		// (it made ours 0.3x of C at 20-30 MiB).
		for {
			n, err := unix.Read(q[0], buf[:1])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return 0, os.NewSyscallError("read", err)
			}
			if n != 1 || buf[0] != 'r' {
				return 0, errors.New("pipe-stream: the writer ended before it was ready")
			}
			break
		}
		buf[0] = 'a'
		t0 := time.Now()
		if _, err := unix.Write(start[1], []byte{'g'}); err != nil {
			return 0, os.NewSyscallError("write", err)
		}
		got := 0
		for got < total {
			n, err := unix.Read(q[0], buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return 0, os.NewSyscallError("read", err)
			}
			if n == 0 {
				return 0, fmt.Errorf("pipe-stream: EOF after %d of %d bytes", got, total)
			}
			got += n
		}
		return float64(total) / time.Since(t0).Seconds(), nil
	}()
	if err != nil {
		cancel()
	}
	return rate, errors.Join(err, cmd.Wait())
}

// streamMain is the child of pipeStream: it waits for the start byte, then
// writes total bytes in size-byte writes.
func streamMain(size, total int) error {
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	w, err := childFD(procs.FDExtra, "stream w", &files)
	if err != nil {
		return err
	}
	start, err := childFD(procs.FDExtra+1, "stream start", &files)
	if err != nil {
		return err
	}
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = 'a'
	}
	if _, err := unix.Write(w, []byte{'r'}); err != nil { // ready
		return os.NewSyscallError("write", err)
	}
	if _, err := unix.Read(start, buf[:1]); err != nil {
		return os.NewSyscallError("read", err)
	}
	for left := total; left > 0; {
		n, err := unix.Write(w, buf[:min(left, size)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		left -= n
	}
	return nil
}

// cRefNote describes what ran, for the report.
func (ref *cRef) describe() string {
	return fmt.Sprintf("built with %s -O2 in a temporary directory (removed after); each ran %d times, taking turns with ours (pipe at 1 B and shm-spin at 8 B, a third of --seconds each; %s in %s writes through a 1 MiB pipe, read by the parent, for both)",
		filepath.Base(ref.Compiler), cRefReps, fmt.Sprintf("%d MiB", ref.StreamMiB), fmt.Sprintf("%d KiB", cStreamKiB))
}

// spanOf formats the range of xs as "0.98-1.10x".
func spanOf(xs []float64) string {
	if len(xs) == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f-%.2fx", slices.Min(xs), slices.Max(xs))
}

// report adds the reference tables and verdicts.
func (ref *cRef) report(r *report.Report) {
	if ref == nil {
		return
	}
	if ref.Skip != "" {
		r.Notef("C references (c-pipe, c-shm-spin) skipped: %s.", ref.Skip)
		return
	}
	var rt *report.Table
	for _, x := range []struct {
		name, ours string
		row        *cRefRow
	}{{"c-pipe", "pipe 1B", ref.Pipe}, {"c-shm-spin", "shm-spin 8B", ref.Spin}} {
		if x.row == nil {
			continue
		}
		if x.row.Skip != "" {
			r.Notef("%s skipped: %s.", x.name, x.row.Skip)
			continue
		}
		if rt == nil {
			rt = r.Table("c_reference", fmt.Sprintf("round trip against the C references (median of %d turns)", cRefReps),
				report.Col("mech", "mech", report.Text),
				report.Col("c_p50_ns", "C p50", report.Micros),
				report.Col("ours", "ours", report.Text),
				report.Col("ours_p50_ns", "ours p50", report.Micros),
				report.Col("ratio", "ours/C", report.Ratio),
				report.Opt("range", "range", report.Text, 1),
			)
		}
		xs := x.row.ratios()
		rt.Row(x.name, time.Duration(median(x.row.C)), x.ours, time.Duration(median(x.row.Ours)), median(xs), spanOf(xs))
		what := map[string]string{"c-pipe": "pipe round trip", "c-shm-spin": "shm-spin round trip"}[x.name]
		r.Verdictf("our %s is %.2fx the C reference's (%s; median of %d turns, range %s)", what, median(xs), x.name, cRefReps, spanOf(xs))
	}
	if rt != nil {
		rt.Notef("Each turn runs the C program, then ours, one after the other; OURS/C is the median of the turns' ratios. %s.", ref.describe())
	}
	if ref.Thr != nil && ref.Thr.Skip == "" {
		t := r.Table("c_pipe_throughput", "pipe throughput through a 1 MiB pipe against C (c-pipe)",
			report.Col("turn", "turn", report.ID),
			report.Col("c_gbps", "C", report.GBps),
			report.Col("ours_gbps", "ours", report.GBps),
			report.Col("ratio", "ours/C", report.Ratio),
		)
		xs := ref.Thr.ratios()
		for i := range xs {
			t.Row(i+1, ref.Thr.C[i]/1e9, ref.Thr.Ours[i]/1e9, xs[i])
		}
		t.Notef("%d MiB in %d KiB writes by a child, read by the parent, timed from the byte that starts the child until the last byte is read; ours is this binary's child (raw write(2)) and parent (raw read(2)).", ref.StreamMiB, cStreamKiB)
		r.Verdictf("our throughput through a 1 MiB pipe is %.2fx the C reference's (median of %d turns, range %s)", median(xs), cRefReps, spanOf(xs))
	}
}
