package primes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/procs"
)

func isPrime(n uint64) bool { return new(big.Int).SetUint64(n).ProbablyPrime(20) }

// checkOne runs Check and verifies its answer against math/big.
func checkOne(t *testing.T, ctx context.Context, n uint64, mode Mode, cfg Config) Result {
	t.Helper()
	res, err := Check(ctx, n, mode, cfg)
	return checkResult(t, n, mode, res, err)
}

func checkResult(t *testing.T, n uint64, mode Mode, res Result, err error) Result {
	t.Helper()
	if err != nil {
		t.Fatalf("Check(%d, %s) error: %v", n, mode, err)
	}
	if want := isPrime(n); res.Prime != want {
		t.Fatalf("Check(%d, %s).Prime = %v, want %v", n, mode, res.Prime, want)
	}
	if !res.Prime && n >= 2 {
		if res.Factor < 2 || res.Factor >= n || n%res.Factor != 0 {
			t.Fatalf("Check(%d, %s).Factor = %d, not a proper divisor", n, mode, res.Factor)
		}
	}
	if res.Prime && res.Factor != 0 {
		t.Fatalf("Check(%d, %s) prime with factor %d", n, mode, res.Factor)
	}
	if res.Checked > res.FullScan {
		t.Fatalf("Check(%d, %s).Checked = %d > FullScan %d", n, mode, res.Checked, res.FullScan)
	}
	return res
}

// numbers returns the inputs of the correctness tests: small n, even n,
// squares of primes, primes and semiprimes whose factors sit at range
// boundaries, and random numbers with small factors.
func numbers(workers int) []uint64 {
	ns := []uint64{0, 1, 2, 3, 4, 5, 9, 15, 21, 25, 361, 441, 443, 529, 841, 961, math.MaxUint64, math.MaxUint64 - 1}
	for n := uint64(6); n < 3000; n++ {
		ns = append(ns, n)
	}
	// Squares of primes, so the only factor is isqrt(n): the last
	// candidate of the last worker.
	for _, p := range []uint64{23, 29, 31, 101, 65521, 65537, 1000003} {
		ns = append(ns, p*p)
	}
	// Semiprimes p*q with q the first factor in each worker's range, the
	// last, and one just past a boundary.
	const p = 1000003
	rest := parallelRange(Isqrt(p * p * 4))
	for _, r := range Split(rest.Lo, rest.Hi, workers) {
		for _, q := range []uint64{r.Lo, r.Hi, r.Hi + 2} {
			ns = append(ns, p*q, q*q, q)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		ns = append(ns, rng.Uint64N(1<<40)|1)
	}
	return ns
}

func TestCheckGoroutines(t *testing.T) {
	ctx := t.Context()
	for _, w := range []int{1, 3, 4} {
		cfg := Config{Workers: w, CheckEvery: 7}
		for _, n := range numbers(w) {
			checkOne(t, ctx, n, Goroutines, cfg)
		}
	}
}

func TestCheckProcs(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg := Config{Workers: 4, CheckEvery: 5}
	// One set of four worker processes checks every number, as the lab
	// does; Check (new workers for one number) is covered by the tests
	// below.
	c, err := NewChecker(ctx, Procs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ran int
	for _, n := range numbers(4) {
		res, err := c.Check(ctx, n)
		res = checkResult(t, n, Procs, res, err)
		if len(res.Workers) > 0 {
			ran++
			for _, w := range res.Workers {
				if w.PID == 0 {
					t.Fatalf("Check(%d, procs) worker %d has no pid", n, w.Index)
				}
			}
		}
	}
	t.Logf("%d checks reached the workers", ran)
	if ran < 20 {
		t.Fatalf("only %d checks reached the workers", ran)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	labtest.NoChildren(t)
}

func TestCheckAgreesAcrossModes(t *testing.T) {
	// A prime whose square root is just above a few thousand, so every
	// worker scans a full range in both modes.
	const n = 100000007
	cfg := Config{Workers: 3, CheckEvery: 10}
	g := checkOne(t, t.Context(), n, Goroutines, cfg)
	p := checkOne(t, t.Context(), n, Procs, cfg)
	if g.Checked != p.Checked || g.Checked != g.FullScan {
		t.Fatalf("prime %d: checked goroutines=%d procs=%d, want both %d", n, g.Checked, p.Checked, g.FullScan)
	}
	for i := range p.Workers {
		if p.Workers[i].Outcome != Finished {
			t.Fatalf("prime %d: procs worker %d outcome %v, want finished", n, i, p.Workers[i].Outcome)
		}
	}
}

// TestEarlyExit checks that a divisor early in the first range makes the
// other workers stop long before the end of theirs, as the shared counters
// show.
func TestEarlyExit(t *testing.T) {
	// n = 23 * P with P prime and n just under 2^64: 23 is the first
	// candidate of worker 0, and the other workers face ranges of about
	// 2^31/4 candidates each, minutes of work they must not do.
	const p = 802032351030850057
	if !isPrime(p) {
		t.Fatalf("test setup: %d is not prime", p)
	}
	n := uint64(23) * p
	for _, mode := range []Mode{Procs, Goroutines} {
		t.Run("mode="+string(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			res := checkOne(t, ctx, n, mode, Config{Workers: 4, CheckEvery: 1000})
			if res.Factor != 23 || res.FoundBy != 0 {
				t.Fatalf("factor %d found by %d, want 23 by worker 0", res.Factor, res.FoundBy)
			}
			if !res.FlagSet {
				t.Fatal("stop flag not set")
			}
			for _, w := range res.Workers[1:] {
				if w.Outcome != Stopped {
					t.Errorf("worker %d outcome %v, want stopped early", w.Index, w.Outcome)
				}
				if w.Checked > w.Range.Len()/10 {
					t.Errorf("worker %d checked %d of %d candidates, want under a tenth", w.Index, w.Checked, w.Range.Len())
				}
			}
			if mode == Procs {
				labtest.NoChildren(t)
			}
		})
	}
}

func TestNoFlagScansEverything(t *testing.T) {
	n := uint64(23) * 1000003
	res := checkOne(t, t.Context(), n, Procs, Config{Workers: 2, CheckEvery: 10, NoFlag: true})
	if res.FoundBy != 0 {
		t.Fatalf("factor found by worker %d, want 0", res.FoundBy)
	}
	// The finder stops at its divisor; the others scan to the end.
	for _, w := range res.Workers[1:] {
		if w.StoppedEarly() || w.Checked != w.Range.Len() {
			t.Errorf("worker %d: outcome %v, checked %d of %d; want the whole range", w.Index, w.Outcome, w.Checked, w.Range.Len())
		}
	}
}

func TestCancelProcs(t *testing.T) {
	// A prime with a long scan: cancellation must end it with
	// context.Canceled and reap every child. How soon is not asserted (a
	// loaded machine decides that); a Check that ignored the cancel meets
	// the 30 s hang guard below.
	const n = 100109100129162907
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	var once bool
	cfg := Config{Workers: 2, CheckEvery: 1000, ProgressInterval: 5 * time.Millisecond,
		Progress: func(p Progress) {
			if !once && p.Checked > 0 {
				once = true
				close(started)
				cancel()
			}
		}}
	done := make(chan error, 1)
	go func() {
		_, err := Check(ctx, n, Procs, cfg)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Check did not return 30s after cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Check after cancel: err = %v, want context.Canceled", err)
	}
	labtest.NoChildren(t)
}

func TestBadWorkerSetup(t *testing.T) {
	// A worker handed a pipe where its board should be reports it clearly.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := procs.Command(ctx, WorkerRole, "-index", "0", "-workers", "1")
	cmd.ExtraFiles = []*os.File{nil, r}
	err = cmd.Run()
	var ce *procs.ChildError
	if !errors.As(err, &ce) || ce.ExitCode != 1 {
		t.Fatalf("worker with a pipe as its board: err = %v, want exit status 1", err)
	}
	if got, want := ce.Error(), "fd 4: want memfd, got pipe"; !strings.Contains(got, want) {
		t.Fatalf("worker error %q does not say %q", got, want)
	}
}

// TestWorkerFailureStopsTheRest hands four workers a check of which one
// refuses its job: the check fails with that worker's error, the checker
// refuses further checks, and closing it reaps the three others.
func TestWorkerFailureStopsTheRest(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := NewChecker(ctx, Procs, Config{Workers: 4, CheckEvery: 1000})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100109100129162907
	var jobs []job
	for i, r := range Split(21, Isqrt(n), 4) {
		jobs = append(jobs, job{n: n, r: r, every: 1000, useFlag: true, index: i})
	}
	jobs[2].every = 0 // the worker refuses it
	_, err = runCheck(ctx, c.r, c.b, jobs, &Config{Workers: 4, CheckEvery: 1000}, Procs)
	var ce *procs.ChildError
	if !errors.As(err, &ce) || ce.Index != 2 || ce.ExitCode != 1 || !strings.Contains(err.Error(), "every = 0") {
		t.Fatalf("runCheck with a bad worker: %v, want worker 2's exit status 1 about every = 0", err)
	}
	if strings.Contains(err.Error(), "[0]") || strings.Contains(err.Error(), "[3]") {
		t.Errorf("error blames the workers that were not at fault: %v", err)
	}
	c.Close()
	labtest.NoChildren(t)
}

// TestCheckerKeepsItsWorkers checks several numbers on one set of worker
// processes: the same pids answer every check, and every answer is right.
func TestCheckerKeepsItsWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := NewChecker(ctx, Procs, Config{Workers: 3, CheckEvery: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		labtest.NoChildren(t)
	}()
	pids := fmt.Sprint(c.Pids())
	for _, tc := range []struct {
		n     uint64
		prime bool
	}{{100000007, true}, {1000003 * 1000033, false}, {91, false}, {1000000007, true}, {1000000007 * 3, false}} {
		res, err := c.Check(ctx, tc.n)
		if err != nil {
			t.Fatalf("Check(%d): %v", tc.n, err)
		}
		if res.Prime != tc.prime || (!res.Prime && (res.Factor < 2 || tc.n%res.Factor != 0)) {
			t.Errorf("Check(%d) = prime %v, factor %d; want prime %v", tc.n, res.Prime, res.Factor, tc.prime)
		}
		for _, w := range res.Workers {
			if !strings.Contains(pids, fmt.Sprint(w.PID)) {
				t.Errorf("Check(%d): worker pid %d is not one of the checker's %s", tc.n, w.PID, pids)
			}
		}
	}
}
