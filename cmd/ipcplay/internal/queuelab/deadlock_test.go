package queuelab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// Children for the stuck detector: one that burns CPU and one that sleeps,
// both without exiting and without touching what the parent watches.
const (
	spinnerRole = "queuelab-test-spinner"
	sleeperRole = "queuelab-test-sleeper"
)

func registerDeadlockTestRoles() {
	procs.Register(spinnerRole, spinnerMain)
	procs.Register(sleeperRole, sleeperMain)
}

func init() {
	// The spinner's main goroutine keeps the main thread (locking in init
	// does that) and sleeps on it, so /proc/PID/stat, which shows the main
	// thread's state, says S while the other threads burn CPU: the state
	// alone cannot tell it from a blocked child, only the CPU time can.
	if len(os.Args) > 0 && os.Args[0] == spinnerRole {
		runtime.LockOSThread()
	}
}

func spinnerMain(ctx context.Context, args []string) error {
	// Four spinning threads, so that even on a loaded machine the child
	// earns clock ticks in every 200 ms the detector watches.
	runtime.GOMAXPROCS(4)
	for range 4 {
		go func() {
			for x := uint64(1); ; x = x*6364136223846793005 + 1 {
				if x == 0 && ctx.Err() != nil {
					return
				}
			}
		}()
	}
	fmt.Println("spinning")
	<-ctx.Done()
	return nil
}

// sleeperMain burns 50 ms of CPU, then says how many clock ticks it has
// used in all, and sleeps: what the detector reports for it must be that
// time, standing still.
func sleeperMain(ctx context.Context, args []string) error {
	var ru syscall.Rusage
	for x := uint64(1); ; x = x*6364136223846793005 + 1 {
		if x%4096 != 0 {
			continue
		}
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return err
		}
		if cpu(ru) >= 50*time.Millisecond {
			break
		}
	}
	fmt.Printf("%d\n", cpu(ru)/(10*time.Millisecond)) // USER_HZ is 100 on Linux
	<-ctx.Done()
	return nil
}

func cpu(ru syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestWatchStuckTellsBusyFromBlocked: the join-deadlock detector calls a
// child stuck only when it sleeps AND its CPU time stands still. A child
// that spins on threads other than its main one (whose state, S, is what
// /proc/PID/stat shows) is busy, not stuck: the detector watches it until
// its context ends. One that sleeps is stuck, and the CPU time reported is
// its own. Reading cutime/cstime (the reaped children's time, always 0
// here) instead of utime/stime fails both: it calls the spinner stuck
// unless a thread was seen runnable, and reports 0 ticks for the sleeper.
func TestWatchStuckTellsBusyFromBlocked(t *testing.T) {
	for _, tc := range []struct {
		role  string
		stuck bool
	}{
		{spinnerRole, false},
		{sleeperRole, true},
	} {
		t.Run("role="+tc.role, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := procs.Command(ctx, tc.role)
			out, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			cmd.Stdout = w
			err = cmd.Start()
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				cmd.Process().Kill()
				<-exited
			}()
			// Wait for the child's word so that its start-up is not
			// what the detector sees.
			word := make([]byte, 32)
			n, err := out.Read(word)
			if err != nil {
				t.Fatal(err)
			}
			used, _ := strconv.ParseUint(strings.TrimSpace(string(word[:n])), 10, 64)
			// Watch the spinner for a dozen of the detector's windows:
			// a single window without a tick would call it stuck.
			wctx, wcancel := context.WithTimeout(ctx, 12*200*time.Millisecond)
			defer wcancel()
			// One byte waits for the parent, and never moves.
			oneByte := func() (int, ipc.QueueStats) { return 1, ipc.QueueStats{} }
			ev, done, err := watchStuck(wctx, cmd.Pid(), exited, oneByte)
			if done {
				t.Fatalf("the child exited: %v", err)
			}
			if tc.stuck {
				if err != nil || ev.PID != cmd.Pid() || ev.State != "S" || ev.CPUTicks[0] != ev.CPUTicks[1] {
					t.Fatalf("watchStuck(sleeping child) = %+v, %v; want it stuck, sleeping, with its CPU time still", ev, err)
				}
				// The time read is the child's own (utime+stime), which
				// it had used before it slept; not its reaped children's.
				// utime and stime are rounded down apart: one tick less.
				if used < 5 || ev.CPUTicks[1]+1 < used {
					t.Fatalf("watchStuck(sleeping child) saw %d clock ticks of CPU time; the child says it used %d", ev.CPUTicks[1], used)
				}
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("watchStuck(spinning child) = %+v, %v; want it watched until the context ended", ev, err)
			}
		})
	}
}
