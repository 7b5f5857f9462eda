package shm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"ipcplay/procs"
)

// The roles of the robust chaos tests.
const (
	// args: serial; take a permit of the robust semaphore at offRobust,
	// sit in a free seat, leave it, give the permit back; until the
	// event is set.
	roleSemChaos = "shm-test-sem-chaos"
	// args: index; join the robust barrier at offRobust and meet the
	// others round after round; on a PartyDeadError write the pid it
	// names into valReport+index and wait on the board's semaphore
	// for the test to mend the barrier.
	roleBarChaos = "shm-test-bar-chaos"
)

// registerReviewRoles registers the roles of the review's tests: the
// robust chaos loops and the owner-life and RLock-token holders.
func registerReviewRoles() {
	procs.Register(roleSemChaos, semChaosMain)
	procs.Register(roleBarChaos, barChaosMain)
	procs.Register(roleLeaderExits, leaderExitsMain)
	procs.Register(roleRLockHoldToken, rlockHoldTokenMain)
}

// valReport+i: the dead party's pid that child i was told of.
const valReport = 12

// The seats of the semaphore chaos loop: int64 slots at offVals, one per
// permit, holding the pid<<10 | serial number (1, 2, ...) of the process
// inside, or 0. The test marks the serial of each child it killed and
// reaped in a bitmap at offDeadKids, so that a seat of the dead can be
// told from a seat of the living without trusting pids, which other
// processes on the machine reuse; and a taker may take the seat of the
// process its OwnerDeadError named, which may die before the test marks
// it. A live process whose seat was taken finds out as it leaves.
const (
	valSeats    = 10
	semPermits  = 2
	offDeadKids = 3072
	maxKids     = 16 * 64
)

// semChaosMain is roleSemChaos; its argument is its serial. With a
// permit it must find a free seat, or one of a process the test killed (a
// holder killed inside, whose permit it may have taken over); finding
// every seat held by a live process means more processes hold permits
// than there are.
func semChaosMain(ctx context.Context, args []string) error {
	serial, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return err
	}
	me := int64(os.Getpid())<<10 | serial
	b, err := childBoard()
	if err != nil {
		return err
	}
	defer b.r.Close()
	s, err := RobustSemaphoreAt(b.r.Bytes(), offRobust)
	if err != nil {
		return err
	}
	dead, err := Int64sAt(b.r.Bytes(), offDeadKids, maxKids/64)
	if err != nil {
		return err
	}
	b.vals.Add(valWaiting, 1)
	for !b.ev.IsSet() {
		err := s.Wait(ctx)
		var od *OwnerDeadError
		if errors.As(err, &od) {
			b.vals.Add(valRepaired, 1)
		} else if err != nil {
			return err
		}
		seat := -1
		for i := valSeats; i < valSeats+semPermits && seat < 0; i++ {
			v := b.vals.Load(i)
			k := v & (maxKids - 1)
			if v == 0 || dead.Load(int(k/64))&(1<<(k%64)) != 0 || (od != nil && v>>10 == int64(od.PID)) {
				if b.vals.CompareAndSwap(i, v, me) {
					seat = i
				}
			}
		}
		if seat < 0 {
			b.vals.Add(valViolations, 1)
		}
		// Now and then hold the permit longer than a wait slice, so
		// that waiters look at the holders while they live.
		if b.vals.Add(valTotal, 1)%64 == 0 {
			time.Sleep(2 * waitSlice)
		} else {
			runtime.Gosched()
		}
		if seat >= 0 && !b.vals.CompareAndSwap(seat, me, 0) {
			b.vals.Add(valViolations, 1)
		}
		if err := s.Post(); err != nil {
			return err
		}
	}
	return nil
}

// TestChaosRobustSemaphore: three children share a robust semaphore of
// two permits; this test SIGKILLs a random one at a random moment and
// starts a replacement. The others must go on (a permit held by the dead
// is taken over) and never more than two live processes hold permits.
// 20 kills, 300 with IPCPLAY_LONG=1; IPCPLAY_SEED replays the schedule.
func TestChaosRobustSemaphore(t *testing.T) {
	kills := 20
	if os.Getenv("IPCPLAY_LONG") == "1" {
		kills = 300
	}
	seed := chaosSeed(t)
	t.Logf("IPCPLAY_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	b := newLockBoard(t)
	if _, err := MakeRobustSemaphore(b.r.Bytes(), offRobust, semPermits); err != nil {
		t.Fatal(err)
	}
	dead, err := Int64sAt(b.r.Bytes(), offDeadKids, maxKids/64)
	if err != nil {
		t.Fatal(err)
	}
	serial := 0
	serials := map[*procs.Cmd]int{}
	start := func() *procs.Cmd {
		serial++
		if serial >= maxKids {
			t.Fatalf("more than %d children", maxKids-1)
		}
		c := procs.Command(ctx, roleSemChaos, strconv.Itoa(serial))
		serials[c] = serial
		c.ExtraFiles = []*os.File{nil, b.r.File()}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	const n = 3
	var kids []*procs.Cmd
	t.Cleanup(func() {
		for _, c := range kids {
			c.Process().Kill()
			c.Wait()
		}
	})
	for range n {
		kids = append(kids, start())
	}
	progress := func(k int) {
		before := b.vals.Load(valTotal)
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
		defer rcancel()
		if !waitFor(rctx, func() bool { return b.vals.Load(valTotal) >= before+20 }) {
			s, _ := RobustSemaphoreAt(b.r.Bytes(), offRobust)
			t.Fatalf("kill %d: no progress in 20s after %d rounds (holders %v)", k, before, s.Holders())
		}
	}
	for k := range kills {
		progress(k)
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		i := rng.IntN(n)
		kids[i].Process().Signal(syscall.SIGKILL)
		kids[i].Wait()
		k := serials[kids[i]]
		dead.Add(k/64, int64(1)<<(k%64))
		kids[i] = start()
	}
	progress(kills)
	b.ev.Set()
	for _, c := range kids {
		if err := c.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}
	kids = nil
	if v := b.vals.Load(valViolations); v != 0 {
		t.Errorf("%d times more processes than permits were inside", v)
	}
	t.Logf("%d kills, %d rounds, %d permits taken over from the dead", kills,
		b.vals.Load(valTotal), b.vals.Load(valRepaired))
}

func barChaosMain(ctx context.Context, args []string) error {
	idx, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	b, err := childBoard()
	if err != nil {
		return err
	}
	defer b.r.Close()
	bar, err := BarrierAt(b.r.Bytes(), offRobust)
	if err != nil {
		return err
	}
	if err := bar.Join(); err != nil {
		return err
	}
	b.vals.Add(valWaiting, 1)
	for {
		_, err := bar.Wait(ctx)
		if err == nil {
			b.vals.Add(valTotal, 1)
			continue
		}
		var pd *PartyDeadError
		if !errors.As(err, &pd) {
			return err
		}
		b.vals.Store(valReport+idx, int64(pd.PID))
		if err := b.sem.Wait(ctx); err != nil {
			return err
		}
	}
}

// TestChaosRobustBarrier: three children meet at a robust barrier round
// after round; this test SIGKILLs a random one at a random moment. Both
// others must be told, by a PartyDeadError, of that very process (no hang:
// each step has a deadline); then the test mends the barrier with Reset,
// starts a replacement, and the rounds go on. 10 kills, 100 with
// IPCPLAY_LONG=1; IPCPLAY_SEED replays the schedule.
func TestChaosRobustBarrier(t *testing.T) {
	kills := 10
	if os.Getenv("IPCPLAY_LONG") == "1" {
		kills = 100
	}
	seed := chaosSeed(t)
	t.Logf("IPCPLAY_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	const n = 3
	b := newLockBoard(t)
	bar, err := MakeRobustBarrier(b.r.Bytes(), offRobust, n)
	if err != nil {
		t.Fatal(err)
	}
	kids := make([]*procs.Cmd, n)
	t.Cleanup(func() {
		for _, c := range kids {
			if c != nil {
				c.Process().Kill()
				c.Wait()
			}
		}
	})
	step := func(what string, cond func() bool) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		defer scancel()
		if !waitFor(sctx, cond) {
			t.Fatalf("%s: not within 20s (state %#x, reports %d %d %d)", what, bar.state.Load(),
				b.vals.Load(valReport), b.vals.Load(valReport+1), b.vals.Load(valReport+2))
		}
	}
	start := func(i int) {
		joined := b.vals.Load(valWaiting)
		c := procs.Command(ctx, roleBarChaos, strconv.Itoa(i))
		c.ExtraFiles = []*os.File{nil, b.r.File()}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		kids[i] = c
		step("a child joins", func() bool { return b.vals.Load(valWaiting) > joined })
	}
	for i := range n {
		start(i)
	}
	for k := range kills {
		before := b.vals.Load(valTotal)
		step(fmt.Sprintf("kill %d: rounds", k), func() bool { return b.vals.Load(valTotal) >= before+3*10 })
		for i := range n {
			b.vals.Store(valReport+i, 0)
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		v := rng.IntN(n)
		pid := kids[v].Pid()
		kids[v].Process().Signal(syscall.SIGKILL)
		kids[v].Wait()
		kids[v] = nil
		for i := range n {
			if i == v {
				continue
			}
			step(fmt.Sprintf("kill %d: child %d told of %d", k, i, pid), func() bool { return b.vals.Load(valReport+i) != 0 })
			if got := b.vals.Load(valReport + i); got != int64(pid) {
				t.Fatalf("kill %d: child %d was told party %d died, want %d", k, i, got, pid)
			}
		}
		bar.Reset()
		start(v)
		for range n - 1 {
			if err := b.sem.Post(); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := b.vals.Load(valTotal)
	step("rounds after the last kill", func() bool { return b.vals.Load(valTotal) >= before+3*10 })
	t.Logf("%d kills, %d party-rounds", kills, b.vals.Load(valTotal))
}
