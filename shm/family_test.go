package shm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ipcplay/procs"
)

func TestRLockRecursion(t *testing.T) {
	l, err := RLockAt(Local(RLockSize), 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := NewToken(), NewToken()
	for i := range 3 {
		if err := l.Lock(t.Context(), a); err != nil {
			t.Fatalf("Lock %d by the holder: %v", i, err)
		}
	}
	if l.Count() != 3 || l.Owner() != os.Getpid() {
		t.Fatalf("after three Locks: count %d owner %d, want 3 and us", l.Count(), l.Owner())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitSlice)
	err = l.Lock(ctx, b)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock by another token of this process = %v, want the deadline", err)
	}
	if err := l.Unlock(b); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Unlock by a token that does not hold it = %v, want ErrNotOwner", err)
	}
	for range 3 {
		if err := l.Unlock(a); err != nil {
			t.Fatal(err)
		}
	}
	if l.Count() != 0 || l.Owner() != 0 {
		t.Fatalf("after three Unlocks: count %d owner %d, want free", l.Count(), l.Owner())
	}
	if err := l.Unlock(a); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Unlock of a free lock = %v, want ErrNotOwner", err)
	}
	if err := l.Lock(t.Context(), 0); err == nil {
		t.Fatal("Lock with the zero token succeeded")
	}
}

// TestRLockGoroutines: tokens of one process exclude each other.
func TestRLockGoroutines(t *testing.T) {
	l, err := RLockAt(Local(RLockSize), 0)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			tok := NewToken()
			for range 500 {
				if err := l.Lock(t.Context(), tok); err != nil {
					t.Error(err)
					return
				}
				if err := l.Lock(t.Context(), tok); err != nil {
					t.Error(err)
					return
				}
				total++
				l.Unlock(tok)
				l.Unlock(tok)
			}
		})
	}
	wg.Wait()
	if total != 2000 {
		t.Errorf("total = %d, want 2000", total)
	}
}

func TestRLockExclusionAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	b := newLockBoard(t)
	const procsN, rounds = 3, 5000
	wait := startChildren(t, ctx, b, procsN, roleRLock, func(int) []string { return []string{strconv.Itoa(rounds)} })
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if v := b.vals.Load(valViolations); v != 0 {
		t.Errorf("%d violations", v)
	}
	if got := b.vals.Load(valTotal); got != procsN*rounds {
		t.Errorf("counter = %d, want %d", got, procsN*rounds)
	}
}

// TestCondGoroutines: a hand-off of many turns between goroutines on a
// Cond in Go memory, where the race detector sees the order; a lost
// wake-up would hang it until the test's deadline.
func TestCondGoroutines(t *testing.T) {
	mem := Local(64)
	mu, err := MutexAt(mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := CondAt(mem, 16, mu)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	turn := 0
	const rounds = 2000
	var wg sync.WaitGroup
	for side := range 2 {
		wg.Go(func() {
			if err := mu.Lock(ctx); err != nil {
				t.Error(err)
				return
			}
			defer mu.Unlock()
			for {
				for turn < rounds && turn%2 != side {
					if err := c.Wait(ctx); err != nil {
						t.Error(err)
						return
					}
				}
				if turn >= rounds {
					c.Broadcast()
					return
				}
				turn++
				c.Signal()
			}
		})
	}
	wg.Wait()
	if turn != rounds {
		t.Errorf("turn = %d, want %d", turn, rounds)
	}
}

// TestCondBoundedBuffer is the notebook's Condition example across
// processes: this process produces into a bounded buffer guarded by a
// shared Mutex and two Conds, three child consumers take; every item is
// taken exactly once.
func TestCondBoundedBuffer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	b := newLockBoard(t)
	c, err := condViews(b)
	if err != nil {
		t.Fatal(err)
	}
	const consumers, items = 3, 3000
	wait := startChildren(t, ctx, b, consumers, roleConsumer, nil)
	var want int64
	for i := range int64(items) {
		if err := c.put(ctx, i+1); err != nil {
			t.Fatal(err)
		}
		want += i + 1
	}
	for range consumers {
		if err := c.put(ctx, -1); err != nil {
			t.Fatal(err)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := b.vals.Load(valConsumed); got != items {
		t.Errorf("%d items taken, want %d", got, items)
	}
	if got := b.vals.Load(valSum); got != want {
		t.Errorf("sum of the items taken = %d, want %d", got, want)
	}
}

// TestCondWaiterKilled: a waiter killed while it waits leaves the Cond
// working: a Signal still wakes the live waiter.
func TestCondWaiterKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := newLockBoard(t)
	c, err := condViews(b)
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*procs.Cmd, *strings.Builder) {
		cmd := procs.Command(ctx, roleCondWait)
		cmd.ExtraFiles = []*os.File{nil, b.r.File()}
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process().Kill(); cmd.Wait() })
		return cmd, &out
	}
	doomed, _ := start()
	if !waitFor(ctx, func() bool { return c.notEmpty.waiters.Load() == 1 }) {
		t.Fatal("the first waiter did not wait")
	}
	doomed.Process().Signal(syscall.SIGKILL)
	doomed.Wait()
	live, out := start()
	if !waitFor(ctx, func() bool { return c.notEmpty.waiters.Load() == 2 }) {
		t.Fatal("the second waiter did not wait")
	}
	if err := c.cmu.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	c.notEmpty.Signal()
	c.cmu.Unlock()
	if err := live.Wait(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "woken\n" {
		t.Fatalf("the live waiter said %q, want woken", out.String())
	}
}

// TestRecoveryNamesTheDead kills a holder of each primitive while this
// process waits: the wait ends with an error naming the killed process
// (MeasureRecovery checks that), every round.
func TestRecoveryNamesTheDead(t *testing.T) {
	for _, kind := range RecoveryKinds() {
		t.Run("kind="+kind, func(t *testing.T) {
			res, err := MeasureRecovery(t.Context(), kind, 3)
			if err != nil {
				t.Fatal(err)
			}
			if res.N != 3 || len(res.Samples) != 3 || res.Max < res.Median || res.Median <= 0 {
				t.Fatalf("MeasureRecovery = %+v", res)
			}
			t.Log(res)
		})
	}
	if _, err := MeasureRecovery(t.Context(), "nonesuch", 1); err == nil {
		t.Error("MeasureRecovery of an unknown primitive succeeded")
	}
}

func TestRobustSemaphore(t *testing.T) {
	mem := Local(RobustSemaphoreSize(2))
	s, err := MakeRobustSemaphore(mem, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !s.TryWait() || s.Wait(t.Context()) != nil || s.TryWait() {
		t.Fatal("two permits: want two takes and no third")
	}
	if s.Value() != 0 || !slices.Equal(s.Holders(), []int{os.Getpid(), os.Getpid()}) {
		t.Fatalf("Value %d Holders %v, want 0 and us twice", s.Value(), s.Holders())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitSlice)
	err = s.Wait(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with no permit free = %v, want the deadline", err)
	}
	again, err := RobustSemaphoreAt(mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := again.Post(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Post(); !errors.Is(err, ErrSemaphoreOverflow) {
		t.Fatalf("Post holding no permit = %v, want ErrSemaphoreOverflow", err)
	}
	if s.Value() != 2 {
		t.Fatalf("Value = %d, want 2", s.Value())
	}
	if _, err := RobustSemaphoreAt(Local(64), 0); err == nil {
		t.Fatal("RobustSemaphoreAt over zeros succeeded")
	}
}

// TestRobustBarrierPartyDies: of three parties, one joined and was killed;
// the two waiting, a child and this process, both get an error naming it
// instead of waiting forever; after Reset three live parties meet.
func TestRobustBarrierPartyDies(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r := newRegion(t, recoverySize)
	v, err := recoveryAt(r.Bytes(), RecoverBarrier, true) // two parties
	if err != nil {
		t.Fatal(err)
	}
	bar, err := MakeRobustBarrier(r.Bytes(), recoveryObject, 3)
	if err != nil {
		t.Fatal(err)
	}
	holder := procs.Command(ctx, RoleRecoveryHolder, RecoverBarrier)
	holder.ExtraFiles = []*os.File{nil, r.File()}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process().Kill(); holder.Wait() })
	if err := v.ready.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	waiter := procs.Command(ctx, roleBarOnce, strconv.Itoa(recoveryObject))
	waiter.ExtraFiles = []*os.File{nil, r.File()}
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	waiter.Stdout = w
	err = waiter.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waiter.Process().Kill(); waiter.Wait() })
	if !waitFor(ctx, func() bool { return bar.state.Load()>>32 == 1 }) {
		t.Fatal("the waiting child did not arrive")
	}
	holder.Process().Signal(syscall.SIGKILL)
	_, err = bar.Wait(ctx)
	var pd *PartyDeadError
	if !errors.As(err, &pd) || pd.PID != holder.Pid() || !errors.Is(err, ErrBrokenBarrier) {
		t.Fatalf("Wait after party %d was killed = %v, want a PartyDeadError naming it", holder.Pid(), err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if want := fmt.Sprintf("party dead %d\n", holder.Pid()); line != want {
		t.Fatalf("the waiting child said %q, want %q", line, want)
	}
	if err := waiter.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := bar.Wait(ctx); !errors.As(err, &pd) {
		t.Fatalf("Wait on the broken barrier = %v, want the PartyDeadError again", err)
	}
	holder.Wait()
	bar.Reset() // forgets the dead holder and the exited child
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, err := bar.Wait(ctx); err != nil {
				t.Errorf("Wait after Reset: %v", err)
			}
		})
	}
	wg.Wait()
}
