package shm

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipcplay/procs"
)

// startHolder starts a child of role (one that prints "locked" once it
// holds what it locks, then blocks) over b's region and waits for that
// line. The child is killed and waited for in Cleanup.
func startHolder(t *testing.T, b *lockBoard, role string, args ...string) *procs.Cmd {
	t.Helper()
	c := procs.Command(t.Context(), role, args...)
	c.ExtraFiles = []*os.File{nil, b.r.File()}
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stdout = w
	err = c.Start()
	w.Close()
	if err != nil {
		out.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process().Kill()
		c.Wait()
		out.Close()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("%s said %q, %v", role, line, err)
	}
	return c
}

// hideProcs makes /proc/PID/stat of the given pids fail with err for the
// rest of the test, as /proc mounted with hidepid= does for another user's
// processes (ENOENT with hidepid=2, EACCES with hidepid=1).
func hideProcs(t *testing.T, err error, pids ...int) {
	prev := readProcStat
	t.Cleanup(func() { readProcStat = prev })
	readProcStat = func(pid int) ([]byte, error) {
		for _, p := range pids {
			if p == pid {
				return nil, &fs.PathError{Op: "open", Path: "/proc/" + "stat", Err: err}
			}
		}
		return prev(pid)
	}
}

// plant writes an owner into m's lock word directly, as a process with
// that pid and start time would have by locking it.
func plant(m *Mutex, pid, start uint32) { m.word.Store(uint64(makeIdent(pid, start))) }

// lockFor locks m with a deadline several wait slices long, so that a
// waiter looks at the owner more than once before it gives up.
func lockFor(t *testing.T, m *Mutex) error {
	ctx, cancel := context.WithTimeout(t.Context(), 10*waitSlice)
	defer cancel()
	return m.Lock(ctx)
}

// TestMutexPidReusedByOnlyWaiter: the owner died and its pid now belongs
// to the one process waiting for the lock (issue 15, finding 10: the
// waiter took the pid as its own and waited forever). Told apart by the
// start time, the waiter takes over.
func TestMutexPidReusedByOnlyWaiter(t *testing.T) {
	m, err := MutexAt(Local(MutexSize), 0)
	if err != nil {
		t.Fatal(err)
	}
	me := myIdent()
	plant(m, me.pid(), me.start()+2)
	err = lockFor(t, m)
	var od *OwnerDeadError
	if !errors.As(err, &od) || od.PID != os.Getpid() {
		t.Fatalf("Lock over a dead owner with our pid = %v, want an OwnerDeadError for pid %d", err, os.Getpid())
	}
	if !m.heldByMe() {
		t.Fatal("after the takeover the lock is not ours")
	}
}

// TestMutexStartTimeChecked: a lock word naming a live process's pid with
// another start time is a dead owner whose pid was reused, and is taken
// over; with the live process's own start time it is not. Ignoring the
// start time in lockSlow (the pid-reuse guard, issue 15's planted fault)
// fails the first half.
func TestMutexStartTimeChecked(t *testing.T) {
	b := newLockBoard(t)
	c := startHolder(t, b, roleHold)
	st, err := readStat(c.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if got := ident(b.mu.word.Load() &^ waitersBit); got != makeIdent(uint32(c.Pid()), st.start) {
		t.Fatalf("lock word names pid %d start %d, want the holder %d start %d", got.pid(), got.start(), c.Pid(), st.start)
	}
	if err := lockFor(t, b.mu); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while the live holder %d has it = %v, want the deadline", c.Pid(), err)
	}
	// The holder's pid with another start time: a dead process whose pid
	// the holder got.
	plant(b.mu, uint32(c.Pid()), st.start+2)
	err = lockFor(t, b.mu)
	var od *OwnerDeadError
	if !errors.As(err, &od) || od.PID != c.Pid() {
		t.Fatalf("Lock over pid %d with a stale start time = %v, want an OwnerDeadError", c.Pid(), err)
	}
	b.mu.Unlock()
}

// TestMutexHiddenOwnerIsNotDead: an owner whose /proc entry cannot be
// read, as under hidepid=, is unknown, not dead (issue 15, finding 10:
// ENOENT was taken for death and a live owner's lock taken over). Once the
// owner is gone for the kernel too (kill(pid, 0) says ESRCH), it is dead.
func TestMutexHiddenOwnerIsNotDead(t *testing.T) {
	for _, hideErr := range []error{syscall.ENOENT, syscall.EACCES} {
		t.Run("err="+hideErr.Error(), func(t *testing.T) {
			b := newLockBoard(t)
			c := startHolder(t, b, roleHold)
			hideProcs(t, hideErr, c.Pid())
			if err := lockFor(t, b.mu); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Lock while a hidden live holder has it = %v, want the deadline", err)
			}
			c.Process().Kill()
			c.Wait() // reaped: no process has the pid now
			err := lockFor(t, b.mu)
			var od *OwnerDeadError
			if !errors.As(err, &od) || od.PID != c.Pid() {
				t.Fatalf("Lock after the hidden holder was killed and reaped = %v, want an OwnerDeadError for %d", err, c.Pid())
			}
			b.mu.Unlock()
		})
	}
}

// TestMutexOwnerInOtherPidNamespace: a holder in a new pid namespace
// records a pid (1) that names another process here. Its lock must not be
// taken over (issue 15, finding 10: init was found alive with another
// start time, and the holder's lock taken as a dead owner's).
func TestMutexOwnerInOtherPidNamespace(t *testing.T) {
	b := newLockBoard(t)
	if err := b.mu.Lock(t.Context()); err != nil { // our namespace first
		t.Fatal(err)
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, procs.Self)
	cmd.Args = []string{roleHold}
	cmd.ExtraFiles = []*os.File{nil, b.r.File()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			t.Skipf("cannot make a pid namespace: %v", err)
		}
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("holder in a new pid namespace said %q, %v; stderr %q", line, err, stderr.String())
	}
	if got := b.mu.Owner(); got != 1 {
		t.Fatalf("owner = %d, want 1, the holder's pid in its namespace", got)
	}
	if err := lockFor(t, b.mu); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while a holder in another pid namespace has it = %v, want the deadline", err)
	}
}
