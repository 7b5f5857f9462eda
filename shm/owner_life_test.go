package shm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// lock the mutex, print "locked", then end the main thread alone
	// (exit(2), not exit_group), the process going on: /proc then shows
	// its thread-group leader as a zombie.
	roleLeaderExits = "shm-test-leader-exits"
)

// leaderExitsMain is roleLeaderExits.
func leaderExitsMain(ctx context.Context, args []string) error {
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
