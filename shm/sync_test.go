package shm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ipcplay/procs"
)

func newLockBoard(t *testing.T) *lockBoard {
	t.Helper()
	b, err := lockViews(newRegion(t, lockRegionSize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startChildren starts n children of role sharing b's region; the returned
// function waits for them all and reports the first failure.
func startChildren(t testing.TB, ctx context.Context, b *lockBoard, n int, role string, args func(i int) []string) func() error {
	t.Helper()
	var cmds []*procs.Cmd
	for i := range n {
		var a []string
		if args != nil {
			a = args(i)
		}
		c := procs.Command(ctx, role, a...)
		c.Index = i
		c.ExtraFiles = []*os.File{nil, b.r.File()}
		if err := c.Start(); err != nil {
			for _, c := range cmds {
				c.Process().Kill()
				c.Wait()
			}
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	var once sync.Once
	var err error
	wait := func() error {
		once.Do(func() {
			for _, c := range cmds {
				if e := c.Wait(); e != nil && err == nil {
					err = e
				}
			}
		})
		return err
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			c.Process().Kill()
		}
		wait()
	})
	return wait
}

// waitFor polls cond until it holds or ctx is done.
func waitFor(ctx context.Context, cond func() bool) bool {
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
	return true
}

func TestMutexExclusionAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	b := newLockBoard(t)
	const procsN, rounds = 4, 20000
	wait := startChildren(t, ctx, b, procsN, roleMutex, func(int) []string { return []string{strconv.Itoa(rounds)} })
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if v := b.vals.Load(valViolations); v != 0 {
		t.Errorf("%d times a process found another inside the critical section", v)
	}
	if got := b.vals.Load(valTotal); got != procsN*rounds {
		t.Errorf("counter = %d, want %d", got, procsN*rounds)
	}
	if b.mu.Owner() != 0 {
		t.Errorf("mutex still owned by %d", b.mu.Owner())
	}
}

// TestMutexGoroutines uses Go memory: the race detector tracks atomics
// there, so it sees the mutex order the goroutines' accesses to total.
// In an mmap'd region it would not (see the package doc).
func TestMutexGoroutines(t *testing.T) {
	mu, err := MutexAt(Local(MutexSize), 0)
	if err != nil {
		t.Fatal(err)
	}
	b := &lockBoard{mu: mu}
	var wg sync.WaitGroup
	total := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if err := b.mu.Lock(t.Context()); err != nil {
					t.Error(err)
					return
				}
				total++
				b.mu.Unlock()
			}
		})
	}
	wg.Wait()
	if total != 8000 {
		t.Errorf("total = %d, want 8000", total)
	}
	if !b.mu.TryLock() || b.mu.TryLock() || b.mu.Owner() != os.Getpid() {
		t.Error("TryLock on a free then a held mutex")
	}
	b.mu.Unlock()
	b.mu.Unlock() // unlocking an unlocked mutex does nothing
	if b.mu.Owner() != 0 {
		t.Error("unlocked mutex has an owner")
	}
}

// TestMutexOwnerDies kills a child holding the lock: the next Lock gets the
// lock and an OwnerDeadError naming the child, within a bounded time, both
// while the dead child is a zombie and after it is reaped.
func TestMutexOwnerDies(t *testing.T) {
	for _, reap := range []bool{false, true} {
		t.Run(fmt.Sprintf("reaped=%v", reap), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			b := newLockBoard(t)
			c := procs.Command(ctx, roleHold)
			c.ExtraFiles = []*os.File{nil, b.r.File()}
			out, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			c.Stdout = w
			err = c.Start()
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Wait()
			defer c.Process().Kill()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || line != "locked\n" {
				t.Fatalf("holder said %q, %v", line, err)
			}
			if b.mu.Owner() != c.Pid() {
				t.Fatalf("owner = %d, want the holder %d", b.mu.Owner(), c.Pid())
			}
			if err := c.Process().Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if reap {
				c.Wait()
			}
			lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
			defer lcancel()
			start := time.Now()
			err = b.mu.Lock(lctx)
			var od *OwnerDeadError
			if !errors.As(err, &od) || !errors.Is(err, ErrOwnerDead) || od.PID != c.Pid() {
				t.Fatalf("Lock after the holder died = %v, want an OwnerDeadError for pid %d", err, c.Pid())
			}
			t.Logf("took over from dead pid %d in %v", od.PID, time.Since(start))
			if b.mu.Owner() != os.Getpid() {
				t.Fatalf("owner after takeover = %d, want us", b.mu.Owner())
			}
			if b.vals.Load(valTotal) != -1 {
				t.Fatal("the holder's half-done update is not visible")
			}
			b.vals.Store(valTotal, 0) // repair
			b.mu.Unlock()
			if err := b.mu.Lock(lctx); err != nil {
				t.Fatalf("Lock after repair: %v", err)
			}
			b.mu.Unlock()
		})
	}
}

// TestMutexOwnerDiesChildWaiter: the waiter is another child, already
// asleep on the lock when the holder is killed.
func TestMutexOwnerDiesChildWaiter(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b := newLockBoard(t)
	holder := procs.Command(ctx, roleHold)
	holder.ExtraFiles = []*os.File{nil, b.r.File()}
	hout, hw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer hout.Close()
	holder.Stdout = hw
	err = holder.Start()
	hw.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	defer holder.Process().Kill()
	if line, err := bufio.NewReader(hout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	waiter := procs.Command(ctx, roleWaiter)
	waiter.ExtraFiles = []*os.File{nil, b.r.File()}
	var wout strings.Builder
	waiter.Stdout = &wout
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	defer waiter.Wait()
	defer waiter.Process().Kill()
	if !waitFor(ctx, func() bool { return b.vals.Load(valWaiting) == 1 }) {
		t.Fatal("the waiter did not start waiting")
	}
	// The waiters bit says it reached the futex: no sleep needed to know.
	if !waitFor(ctx, func() bool { return b.mu.word.Load()&waitersBit != 0 }) {
		t.Fatal("the waiter did not reach the futex")
	}
	if b.mu.Owner() != holder.Pid() {
		t.Fatalf("before the kill the owner is %d, not the holder %d", b.mu.Owner(), holder.Pid())
	}
	killed := time.Now()
	holder.Process().Signal(syscall.SIGKILL)
	if err := waiter.Wait(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(killed)
	if want := fmt.Sprintf("owner dead %d\n", holder.Pid()); wout.String() != want {
		t.Fatalf("waiter said %q, want %q", wout.String(), want)
	}
	t.Logf("a child took over %v after the kill", took)
	if b.mu.Owner() != 0 {
		t.Errorf("owner %d after the waiter unlocked", b.mu.Owner())
	}
}

func TestSemaphoreCounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := newLockBoard(t)
	const n = 4
	wait := startChildren(t, ctx, b, n, roleSem, nil)
	if !waitFor(ctx, func() bool { return b.vals.Load(valWaiting) == n }) {
		t.Fatal("children did not reach the semaphore")
	}
	time.Sleep(50 * time.Millisecond)
	if got := b.vals.Load(valPassed); got != 0 {
		t.Fatalf("%d passed a semaphore at zero", got)
	}
	b.sem.Post()
	b.sem.Post()
	if !waitFor(ctx, func() bool { return b.vals.Load(valPassed) == 2 }) {
		t.Fatal("two posts did not let two children pass")
	}
	time.Sleep(100 * time.Millisecond)
	if got := b.vals.Load(valPassed); got != 2 || b.sem.Value() != 0 {
		t.Fatalf("after two posts %d passed, count %d; want 2 and 0", got, b.sem.Value())
	}
	b.sem.Post()
	b.sem.Post()
	b.sem.Post()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := b.vals.Load(valPassed); got != n || b.sem.Value() != 1 {
		t.Fatalf("after five posts %d passed, count %d; want %d and 1", got, b.sem.Value(), n)
	}
	if !b.sem.TryWait() || b.sem.TryWait() {
		t.Fatal("TryWait with count 1")
	}
}

func TestEventWakesAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := newLockBoard(t)
	const n = 4
	wait := startChildren(t, ctx, b, n, roleEvent, nil)
	if !waitFor(ctx, func() bool { return b.vals.Load(valWaiting) == n }) {
		t.Fatal("children did not reach the event")
	}
	time.Sleep(50 * time.Millisecond)
	if got := b.vals.Load(valPassed); got != 0 || b.ev.IsSet() {
		t.Fatalf("%d passed a clear event", got)
	}
	b.ev.Set()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := b.vals.Load(valPassed); got != n {
		t.Fatalf("%d of %d passed the event", got, n)
	}
	b.ev.Clear()
	if b.ev.IsSet() {
		t.Fatal("cleared event is set")
	}
}

func TestBarrierReleasesTogether(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := newLockBoard(t)
	const parties, rounds = 4, 3
	if _, err := MakeBarrier(b.r.Bytes(), offBarrier, parties); err != nil {
		t.Fatal(err)
	}
	wait := startChildren(t, ctx, b, parties, roleBarrier, func(i int) []string {
		return []string{strconv.Itoa(i), strconv.Itoa(rounds)}
	})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for r := range rounds {
		if got := b.vals.Load(valArrived + r); got != parties {
			t.Errorf("round %d: %d arrived", r, got)
		}
	}
}

func TestBarrierGoroutinesArrivalOrder(t *testing.T) {
	bar, err := MakeBarrier(Local(BarrierSize), 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		seen := make([]int, 5)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				i, err := bar.Wait(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[i]++
				mu.Unlock()
			})
		}
		wg.Wait()
		for i, n := range seen {
			if n != 1 {
				t.Fatalf("arrival index %d given %d times", i, n)
			}
		}
	}
}

// TestWaitsHonorDeadlines: every wait that cannot succeed returns its
// context's error soon after the deadline.
func TestWaitsHonorDeadlines(t *testing.T) {
	b := newLockBoard(t)
	if err := b.mu.Lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	bar, err := MakeBarrier(b.r.Bytes(), offBarrier, 2)
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 60 * time.Millisecond
	for _, tc := range []struct {
		name string
		wait func(ctx context.Context) error
	}{
		{"mutex", b.mu.Lock},
		{"semaphore", b.sem.Wait},
		{"event", b.ev.Wait},
		{"barrier", func(ctx context.Context) error { _, err := bar.Wait(ctx); return err }},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		dl, _ := ctx.Deadline()
		err := tc.wait(ctx)
		returned := time.Now()
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want a deadline error", tc.name, err)
		}
		// Against the deadline itself, not a clock started after the
		// context was made: the gap between the two is the machine's
		// load, and once made the test fail with "returned after 56.5ms
		// with a 60ms deadline". No upper bound: a slow return is a
		// benchmark's business; a hang ends at the test's deadline.
		if returned.Before(dl) {
			t.Errorf("%s: returned %v before its deadline", tc.name, dl.Sub(returned))
		}
	}
	// A cancel, not only a deadline, is noticed within a slice.
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(30*time.Millisecond, cancel)
	if err := b.ev.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("event wait after cancel: %v", err)
	}
	// The barrier that timed out is broken until Reset.
	if _, err := bar.Wait(t.Context()); !errors.Is(err, ErrBrokenBarrier) {
		t.Errorf("wait on a broken barrier: %v", err)
	}
	bar.Reset()
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := bar.Wait(t.Context()); err != nil {
			t.Error(err)
		}
	})
	if _, err := bar.Wait(t.Context()); err != nil {
		t.Errorf("wait after Reset: %v", err)
	}
	wg.Wait()
	b.mu.Unlock()
}

func TestSyncViewErrors(t *testing.T) {
	mem := Local(64)
	for _, bad := range []func() error{
		func() error { _, err := MutexAt(mem, 4); return err },
		func() error { _, err := MutexAt(mem, 56); return err },
		func() error { _, err := SemaphoreAt(mem, 60); return err },
		func() error { _, err := EventAt(mem, 64); return err },
		func() error { _, err := BarrierAt(mem, 0); return err },
		func() error { _, err := MakeBarrier(mem, 0, 0); return err },
	} {
		if bad() == nil {
			t.Error("a bad view was made")
		}
	}
}

// TestAlive: a live process is alive only with its own start time, so a
// new process that reuses a dead owner's pid is not taken for the owner.
func TestAlive(t *testing.T) {
	me := self()
	pid, start := uint32(me>>32), uint32(me)
	if int(pid) != os.Getpid() || start == 0 {
		t.Fatalf("self = pid %d start %d", pid, start)
	}
	if !alive(pid, start) || !alive(pid, 0) {
		t.Error("this process is not alive")
	}
	if alive(pid, start+2) {
		t.Error("this process with another start time is alive: pid reuse would go unnoticed")
	}
	if alive(1<<22+1, 0) {
		t.Error("a pid above pid_max is alive")
	}
}
