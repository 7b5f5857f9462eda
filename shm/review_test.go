package shm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
)

// The roles of the review's tests.
const (
	// args: n; take NewToken until it is at least n (at most 2^16 times), lock the RLock at
	// offRLock with it twice, print "locked", block until killed.
	roleRLockHoldToken = "shm-test-rlock-hold-token"
	// lock the mutex, print "locked", then end the main thread alone
	// (exit(2), not exit_group), the process going on: /proc then shows
	// its thread-group leader as a zombie.
	roleLeaderExits = "shm-test-leader-exits"
	// take a permit of the robust semaphore at offRobust, sit in a free
	// seat, leave it, give the permit back; until the event is set.
	roleSemChaos = "shm-test-sem-chaos"
	// args: index; join the robust barrier at offRobust and meet the
	// others round after round; on a PartyDeadError write the pid it
	// names into valReport+index and wait on the board's semaphore
	// for the test to mend the barrier.
	roleBarChaos = "shm-test-bar-chaos"
)

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

func registerReviewRoles() {
	procs.Register(roleSemChaos, semChaosMain)
	procs.Register(roleBarChaos, barChaosMain)
	procs.Register(roleLeaderExits, func(ctx context.Context, args []string) error {
		b, err := childBoard()
		if err != nil {
			return err
		}
		if err := b.mu.Lock(ctx); err != nil {
			return err
		}
		fmt.Println("locked")
		// Find the main thread: this goroutine, or one of many started
		// until one runs on it; the others end their threads.
		onMain := func() {
			runtime.LockOSThread()
			if unix.Gettid() == unix.Getpid() {
				unix.RawSyscall(unix.SYS_EXIT, 0, 0, 0)
			}
		}
		go func() {
			for range 10000 {
				go onMain()
				time.Sleep(time.Millisecond)
			}
		}()
		onMain()
		for {
			time.Sleep(time.Hour)
		}
	})
	procs.Register(roleRLockHoldToken, func(ctx context.Context, args []string) error {
		n, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil {
			return err
		}
		b, err := childBoard()
		if err != nil {
			return err
		}
		l, err := RLockAt(b.r.Bytes(), offRLock)
		if err != nil {
			return err
		}
		tok := NewToken()
		for i := 0; uint64(tok) < n && i < 1<<16; i++ {
			tok = NewToken()
		}
		for range 2 {
			if err := l.Lock(ctx, tok); err != nil {
				return err
			}
		}
		fmt.Println("locked")
		for {
			time.Sleep(time.Hour)
		}
	})
}

// TestRLockStaleTokenOfDeadOwner: a process died holding an RLock; a
// goroutine of this process takes the lock over (RLock.Lock has taken the
// Mutex and not yet written its own token), while another goroutine of this
// process calls Lock with a token whose value equals the dead owner's. The
// dead owner's token is still in the token word and the Mutex now names
// this process, so held() said yes and the second goroutine "re-entered" a
// lock the first one holds: two holders at once. Tokens were a per-process
// counter from 1, so equal values in two processes were the rule.
func TestRLockStaleTokenOfDeadOwner(t *testing.T) {
	b := newLockBoard(t)
	l, err := RLockAt(b.r.Bytes(), offRLock)
	if err != nil {
		t.Fatal(err)
	}
	// The child's token reaches past this process's next one, so that a
	// counter would hand this process the same value below.
	c := startHolder(t, b, roleRLockHoldToken, strconv.FormatUint(uint64(NewToken())+5, 10))
	c.Process().Signal(syscall.SIGKILL)
	c.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// The first goroutine's step: the Mutex taken over, its token not
	// yet written.
	if err := l.mu.Lock(ctx); !errors.Is(err, ErrOwnerDead) {
		t.Fatalf("taking over the dead holder's mutex = %v, want ErrOwnerDead", err)
	}
	for range 1000 {
		tok := NewToken()
		if l.held(tok) {
			err := l.Lock(ctx, tok)
			t.Fatalf("token %d of this process passes for the dead owner's: Lock = %v with count %d, while another goroutine holds the lock",
				tok, err, l.Count())
		}
	}
}

// TestMutexOwnerWhoseMainThreadExited: a process whose main thread ended
// alone (pthread_exit in C, or a raw exit(2)) while its other threads run
// shows state Z in /proc/PID/stat, like a zombie; the threads left may
// hold the lock. lifeOf took Z for dead, so a waiter took a live owner's
// lock: two owners at once. A zombie is dead only when no thread is left
// but the leader (num_threads, field 20, is 1).
func TestMutexOwnerWhoseMainThreadExited(t *testing.T) {
	b := newLockBoard(t)
	c := startHolder(t, b, roleLeaderExits)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stat := "/proc/" + strconv.Itoa(c.Pid()) + "/stat"
	if !waitFor(ctx, func() bool {
		s, err := os.ReadFile(stat)
		return err == nil && strings.Contains(string(s), ") Z ")
	}) {
		t.Fatal("the holder's main thread did not exit")
	}
	if err := unix.Kill(c.Pid(), 0); err != nil {
		t.Fatalf("holder: %v", err)
	}
	if err := lockFor(t, b.mu); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil || errors.Is(err, ErrOwnerDead) {
			b.mu.Unlock()
		}
		t.Fatalf("Lock while a live process whose main thread exited holds it = %v, want the deadline", err)
	}
}

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

// FuzzParseStat: a process names itself (comm, field 2) with any bytes,
// spaces and parentheses included; the state, thread count and start time
// after it are still the ones read.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("ipcplay"), byte('S'), uint16(5), uint64(123456))
	f.Add([]byte(") Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 1 0 0 ("), byte('R'), uint16(1), uint64(1)<<40)
	f.Fuzz(func(t *testing.T, comm []byte, state byte, threads uint16, start uint64) {
		if (state < 'A' || state > 'Z') && (state < 'a' || state > 'z') {
			return // states are letters (proc_pid_stat(5))
		}
		line := fmt.Sprintf("4242 (%s) %c 1 4242 4242 0 -1 4194560 100 0 0 0 3 1 0 0 20 0 %d 0 %d 10000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
			comm, rune(state), threads, start)
		st, err := parseStat([]byte(line))
		if err != nil {
			t.Fatalf("parseStat(%q): %v", line, err)
		}
		if st.state != state || st.threads != int(threads) || st.start != uint32(start) {
			t.Fatalf("parseStat(%q) = %+v, want state %c threads %d start %d", line, st, state, threads, uint32(start))
		}
	})
}

// TestMutexOwnerInOtherTimeNamespace: /proc/PID/stat gives a start time
// shifted by the boottime offset of the reader's time namespace, so a
// holder in a time namespace with a boottime offset (same pid namespace)
// recorded a start time its waiters never read for it: they took it for a
// dead owner whose pid was reused, and took its lock. Needs unshare(1)
// and the right to make a time namespace; skipped otherwise.
func TestMutexOwnerInOtherTimeNamespace(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to run the holder under unshare")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "unshare", "-T", "--boottime", "100000", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a time namespace: %v %s", err, out)
	}
	b := newLockBoard(t)
	c := exec.CommandContext(ctx, "unshare", "-T", "--boottime", "100000", "--",
		bash, "-c", `exec -a "$1" "$0"`, exe, roleHold)
	c.ExtraFiles = []*os.File{nil, b.r.File()}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process.Kill()
		c.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("holder in a time namespace said %q, %v", line, err)
	}
	if err := lockFor(t, b.mu); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil || errors.Is(err, ErrOwnerDead) {
			b.mu.Unlock()
		}
		t.Fatalf("Lock while a live process of another time namespace holds it = %v, want the deadline", err)
	}
}

func TestParseBootOffset(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint32
	}{
		{"monotonic           0         0\nboottime            0         0\n", 0},
		{"monotonic 5 0\nboottime 100000 0\n", 10000000},
		{"boottime -5 500000000\n", uint32(0xffffffff - 450 + 1)},
		{"boottime x 0\n", 0},
		{"", 0},
	} {
		if got := parseBootOffset([]byte(c.in)); got != c.want {
			t.Errorf("parseBootOffset(%q) = %d, want %d", c.in, got, c.want)
		}
	}
	if !sameStart(5, 6) || !sameStart(0, ^uint32(0)) || sameStart(5, 7) {
		t.Error("sameStart: want equal within a tick, across the wrap, and no further")
	}
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
