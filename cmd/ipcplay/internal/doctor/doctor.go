package doctor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// Command returns the doctor command.
func Command() *base.Command {
	cmd := &base.Command{
		UsageLine: "doctor [flags]",
		Short:     "what this machine offers the labs, and why a line will be skipped",
		Long: `Checks what the labs use beyond the Go runtime: perf and the kernel's perf_event_paranoid (system-call counts in the cost breakdowns), python3 and its msgpack module (the comparison with Python's multiprocessing), a C compiler (the C references in testdata), POSIX message queues and their limits, the pipe size limit, transparent huge pages, cores and memory. Nothing is installed or changed.

Examples:
  ipcplay doctor
  ipcplay doctor --json`,
	}
	out := base.AddOutputFlags(&cmd.Flag)
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		return report.Write(env, out, check(ctx))
	}
	return cmd
}

// A finding is one line of the doctor's table.
type finding struct {
	what, status, detail, affects string
}

func check(ctx context.Context) *report.Report {
	r := report.New("doctor", "doctor: what this machine offers the labs")
	var fs []finding
	add := func(what string, ok bool, detail, affects string) {
		status := "ok"
		if !ok {
			status = "missing"
		}
		fs = append(fs, finding{what, status, detail, affects})
	}

	add("cores", true, fmt.Sprintf("%d CPUs, GOMAXPROCS %d", runtime.NumCPU(), runtime.GOMAXPROCS(0)), "pinned placements need 2")
	if mem, err := memTotal(); err == nil {
		add("memory", true, fmt.Sprintf("%.1f GiB total", float64(mem)/(1<<30)), "large shm bench sizes")
	}
	paranoid, perr := readTrim("/proc/sys/kernel/perf_event_paranoid")
	perfPath, lerr := exec.LookPath("perf")
	switch {
	case lerr != nil:
		add("perf", false, "not on PATH (Debian: linux-perf)", "bench --check-perf")
	default:
		add("perf", true, perfPath, "bench --check-perf")
	}
	if perr == nil {
		level, _ := strconv.Atoi(paranoid)
		ok := level <= 1 || os.Geteuid() == 0
		detail := "perf_event_paranoid " + paranoid
		if os.Geteuid() == 0 {
			detail += " (root may count any process)"
		} else if !ok {
			detail += ": counting another process's syscalls needs <= 1"
		}
		add("syscall counting", ok, detail, "cost breakdowns")
	} else {
		add("syscall counting", false, "no perf_event_paranoid: "+perr.Error(), "cost breakdowns")
	}
	if py, err := exec.LookPath("python3"); err != nil {
		add("python3", false, "not on PATH", "queue's Python line")
	} else {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, py, "-c", "import sys, multiprocessing; print(sys.version.split()[0])").Output()
		add("python3", err == nil, strings.TrimSpace(string(out))+" (multiprocessing)", "queue's Python line")
		err = exec.CommandContext(ctx, py, "-c", "import msgpack").Run()
		add("python3 msgpack", err == nil, map[bool]string{true: "importable", false: "not installed (pip install msgpack)"}[err == nil], "Python's wire")
	}
	cc := ""
	for _, c := range []string{"cc", "gcc", "clang"} {
		if p, err := exec.LookPath(c); err == nil {
			cc = p
			break
		}
	}
	add("C compiler", cc != "", orNone(cc), "C references (testdata)")
	if max, err := readTrim("/proc/sys/fs/mqueue/msg_max"); err == nil {
		size, _ := readTrim("/proc/sys/fs/mqueue/msgsize_max")
		add("POSIX mqueue", true, fmt.Sprintf("msg_max %s, msgsize_max %s", max, size), "bench mqueue cells")
	} else {
		add("POSIX mqueue", false, "no /proc/sys/fs/mqueue (kernel without CONFIG_POSIX_MQUEUE)", "bench mqueue cells")
	}
	if v, err := readTrim("/proc/sys/fs/pipe-max-size"); err == nil {
		n, _ := strconv.ParseInt(v, 10, 64)
		add("pipe-max-size", true, base.FormatSize(n)+" for unprivileged F_SETPIPE_SZ", "pipes capacity")
	}
	if v, err := readTrim("/sys/kernel/mm/transparent_hugepage/enabled"); err == nil {
		add("huge pages (THP)", !strings.Contains(v, "[never]"), v, "pipes bench huge pages")
	} else {
		add("huge pages (THP)", false, "no transparent_hugepage", "pipes bench huge pages")
	}
	browser := ""
	for _, c := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(c); err == nil {
			browser = p
			break
		}
	}
	add("headless browser", browser != "", orNone(browser), "the --html page test")

	t := r.Table("checks", "checks",
		report.Col("what", "what", report.Text),
		report.Col("status", "status", report.Text),
		report.Col("detail", "detail", report.Text),
		report.Opt("affects", "affects", report.Text, 1),
	)
	missing := 0
	for _, f := range fs {
		t.Row(f.what, f.status, f.detail, f.affects)
		if f.status != "ok" {
			missing++
		}
	}
	if missing == 0 {
		r.Verdictf("every lab and cell can run here")
	} else {
		r.Verdictf("%d of %d checks missing: the labs run, and the lines that need them are skipped with the reason", missing, len(fs))
	}
	return r
}

func orNone(s string) string {
	if s == "" {
		return "none found"
	}
	return s
}

func readTrim(name string) (string, error) {
	b, err := os.ReadFile(name)
	return strings.TrimSpace(string(b)), err
}

func memTotal() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
