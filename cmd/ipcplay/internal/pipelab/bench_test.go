package pipelab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
)

func TestBenchRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fds := openFDs(t)
	runs, err := Bench(ctx, BenchConfig{Rounds: 500, Bytes: 8 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 12 {
		t.Fatalf("%d runs, want 12", len(runs))
	}
	for _, r := range runs {
		t.Logf("%s %s %s pipe %d: median %v p99 %v, %.2f GB/s %s %s", r.Test, r.Mode, r.Path, r.PipeSize, r.RTTMedian, r.RTTP99, r.GBps(), r.Note, r.Skipped)
		if r.Skipped != "" {
			// Only the huge-page run may be skipped, and only because
			// the system offers no huge pages or refused the request.
			_, noHuge := HugeBacking()
			if r.Path != PathVmspliceSpliceHuge || (noHuge == nil && !strings.HasPrefix(r.Skipped, "huge pages refused: ")) {
				t.Errorf("%s skipped: %s", r.Path, r.Skipped)
			}
			continue
		}
		switch r.Test {
		case "pingpong":
			if r.RTTMedian <= 0 || r.RTTP99 < r.RTTMedian {
				t.Errorf("%+v", r)
			}
		case "throughput":
			if r.Elapsed <= 0 || r.Bytes != 8<<20 {
				t.Errorf("%+v", r)
			}
			if r.Mode == ModeProcs && r.PipeSize == 0 {
				t.Errorf("pipe size unknown: %+v", r)
			}
		}
	}
	if runs[5].PipeSize <= runs[3].PipeSize {
		t.Errorf("the big pipe (%d) is not bigger than the default (%d)", runs[5].PipeSize, runs[3].PipeSize)
	}
	if kids, err := procs.Children(os.Getpid()); err != nil || len(kids) > 0 {
		t.Errorf("children left: %v %v", kids, err)
	}
	if got := openFDs(t); got != fds {
		t.Errorf("%d fds before, %d after", fds, got)
	}
}

// The benchmarks run one child per sub-benchmark and b.N round trips (or
// b.N 64 KiB chunks) in it, so ns/op includes starting the child; the
// metrics they report (ns-median/roundtrip, ns-p99/roundtrip, GB/s) time
// the transfer alone.

func BenchmarkPingPong(b *testing.B) {
	for _, path := range []string{PathRaw, PathFile} {
		b.Run(fmt.Sprintf("mode=procs/path=%s", path), func(b *testing.B) {
			r, err := PingPongProcs(b.Context(), path, b.N)
			if err != nil {
				b.Fatal(err)
			}
			reportRTT(b, r)
		})
	}
	b.Run("mode=goroutines/path=chan", func(b *testing.B) {
		reportRTT(b, PingPongGoroutines(b.N))
	})
}

func reportRTT(b *testing.B, r BenchRun) {
	b.ReportMetric(float64(r.RTTMedian.Nanoseconds()), "ns-median/roundtrip")
	b.ReportMetric(float64(r.RTTP99.Nanoseconds()), "ns-p99/roundtrip")
}

func BenchmarkThroughput(b *testing.B) {
	const chunk = 64 << 10
	for _, size := range []int{0, 1 << 20} {
		for _, path := range []string{PathRaw, PathFile} {
			b.Run(fmt.Sprintf("mode=procs/path=%s/pipe=%d", path, size), func(b *testing.B) {
				r, err := ThroughputProcs(b.Context(), path, size, int64(b.N)*chunk, chunk)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.GBps(), "GB/s")
			})
		}
	}
	for _, variant := range ZeroCopyPaths() {
		b.Run(fmt.Sprintf("mode=procs/path=%s/pipe=%d", variant, 1<<20), func(b *testing.B) {
			r, err := ThroughputZeroCopy(b.Context(), variant, 1<<20, int64(b.N)*chunk, chunk)
			if err != nil {
				b.Fatal(err)
			}
			if r.Skipped != "" {
				b.Skip(r.Skipped)
			}
			b.ReportMetric(r.GBps(), "GB/s")
		})
	}
	for _, path := range []string{PathIOPipe, PathChan} {
		b.Run(fmt.Sprintf("mode=goroutines/path=%s", path), func(b *testing.B) {
			r, err := ThroughputGoroutines(path, int64(b.N)*chunk, chunk)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.GBps(), "GB/s")
		})
	}
}

// freeHugeTLB reports whether the hugetlb pool has a free page, in which
// case MAP_HUGETLB succeeds and the refusal tests have nothing to refuse.
func freeHugeTLB(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "HugePages_Free:"); ok {
			return strings.TrimSpace(rest) != "0"
		}
	}
	return false
}

func TestHugeErrClassifies(t *testing.T) {
	for _, tc := range []struct {
		errno   unix.Errno
		refused bool
	}{
		{unix.EINVAL, true}, {unix.ENOMEM, true}, {unix.EPERM, true},
		{unix.EBADF, false}, {unix.EACCES, false}, {unix.EFAULT, false},
	} {
		err := hugeErr("mmap MAP_HUGETLB", tc.errno)
		if got := errors.Is(err, errHugeRefused); got != tc.refused || !errors.Is(err, tc.errno) {
			t.Errorf("hugeErr(%v) = %v: refused %v, want %v", tc.errno, err, got, tc.refused)
		}
	}
}

func TestHugeTLBRefusedInProcess(t *testing.T) {
	if freeHugeTLB(t) {
		t.Skip("the hugetlb pool has free pages: MAP_HUGETLB succeeds here")
	}
	buf, release, err := writeBuffer(64<<10, HugeTLB)
	if err == nil {
		release()
		t.Fatalf("writeBuffer(hugetlb) got %d bytes from an empty hugetlb pool", len(buf))
	}
	if !errors.Is(err, errHugeRefused) || !errors.Is(err, unix.ENOMEM) {
		t.Errorf("writeBuffer(hugetlb) = %v, want a refusal with ENOMEM", err)
	}
}

// TestHugeRefusalSkips runs a child whose huge-page request is refused:
// the run is skipped with the child's reason, not failed.
func TestHugeRefusalSkips(t *testing.T) {
	if freeHugeTLB(t) {
		t.Skip("the hugetlb pool has free pages: MAP_HUGETLB succeeds here")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	run, err := throughput(ctx, PathVmspliceSpliceHuge, PathRaw, 0, 1<<20, 64<<10, false, HugeTLB)
	if err != nil {
		t.Fatalf("throughput with a refused hugetlb buffer: %v, want a skipped run", err)
	}
	if !strings.HasPrefix(run.Skipped, "huge pages refused: mmap MAP_HUGETLB: ") {
		t.Errorf("Skipped = %q, want the child's refusal", run.Skipped)
	}
}

// TestHugeOtherErrorsFail: a huge-page run that fails for any reason but
// a documented refusal fails, it is not skipped.
func TestHugeOtherErrorsFail(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The child refuses "-huge bogus" as a usage error: exit status 1.
	run, err := throughput(ctx, PathVmspliceSpliceHuge, PathRaw, 0, 1<<20, 64<<10, false, "bogus")
	if err == nil || run.Skipped != "" {
		t.Fatalf("throughput(-huge bogus) = skipped %q, error %v; want an error and no skip", run.Skipped, err)
	}
	if kids, err := procs.Children(os.Getpid()); err != nil || len(kids) > 0 {
		t.Errorf("children left: %v %v", kids, err)
	}
}

// TestCReference compiles and runs testdata/pipes-pingpong.c, the C program
// the lab sheet compares the bench with, so that it keeps building and
// printing what the sheet says.
func TestCReference(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "pp")
	if out, err := exec.CommandContext(ctx, cc, "-O2", "-Wall", "-Werror", "-o", bin, "../../../../testdata/pipes-pingpong.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "200", "2", "64").Output()
	if err != nil {
		t.Fatalf("pipes-pingpong: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "C pingpong median ") ||
		!strings.HasPrefix(lines[1], "C throughput pipe ") || !strings.HasPrefix(lines[2], "C throughput pipe 1048576 bytes") {
		t.Errorf("pipes-pingpong printed:\n%s", out)
	}
	if err := exec.CommandContext(ctx, bin, "5").Run(); err == nil {
		t.Errorf("pipes-pingpong 5: ran, want the usage error for rounds under 100")
	}
}
