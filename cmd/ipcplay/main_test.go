//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/procs"
)

// cliRole runs the whole command line in a child, as the installed binary
// would: the tests that send signals need a process of their own.
const cliRole = "ipcplay-test-cli"

func TestMain(m *testing.M) {
	registerRoles()
	procs.Register(cliRole, func(_ context.Context, args []string) error {
		os.Exit(cli(args))
		return nil
	})
	procs.Init()
	os.Exit(m.Run())
}

// runHere runs the command line in this process and returns its exit status
// and output.
func runHere(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = program().Main(ctx, base.TestEnv(&out, &errOut), args)
	labtest.NoChildren(t)
	return code, out.String(), errOut.String()
}

func TestUnknownCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, `unknown command "nosuch"; want primes,`},
		{[]string{"prime"}, `unknown command "prime"; did you mean "primes"?`},
		{[]string{}, "usage: ipcplay <command>"},
	} {
		code, stdout, stderr := runHere(t, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q on stderr", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "primes"},
		{[]string{"--help"}, "primes"},
		{[]string{"help", "primes"}, "usage: ipcplay primes"},
		{[]string{"primes", "-h"}, "usage: ipcplay primes"},
		{[]string{"primes", "--help"}, "--check-every N"},
		{[]string{"help", "help"}, "commands:"},
		{[]string{"help", "-h"}, "commands:"},
		{[]string{"--help", "help"}, "commands:"},
		{[]string{"--version"}, "ipcplay "},
		{[]string{"version"}, "ipcplay "},
	} {
		code, stdout, stderr := runHere(t, tc.args...)
		if code != 0 || stderr != "" || !strings.Contains(stdout, tc.want) {
			t.Errorf("%q: exit %d, stderr %q, stdout %.80q; want 0 and %q on stdout", tc.args, code, stderr, stdout, tc.want)
		}
	}
}

// startCLI starts the command line in a child and waits until it has
// started want workers of its own; it returns the child and their pids.
func startCLI(t *testing.T, want int, args ...string) (*procs.Cmd, *bytes.Buffer, []int) {
	t.Helper()
	// As long as the test may take: on a loaded machine the sieve and the
	// bare re-execs before the workers start can take many seconds (36 s
	// at a load average of 35 on two cores; a one-minute context then
	// killed the cli before it had started a worker).
	deadline := time.Now().Add(5 * time.Minute)
	if d, ok := t.Deadline(); ok {
		deadline = d.Add(-10 * time.Second)
	}
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	t.Cleanup(cancel)
	c := procs.Command(ctx, cliRole, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process().Kill()
		c.Wait()
	})
	for {
		kids, err := procs.Children(c.Pid())
		if err != nil {
			t.Fatal(err)
		}
		if len(kids) == want {
			return c, &stderr, kids
		}
		// A cli that ended before its workers were seen would otherwise
		// hold the test until its deadline.
		if gone(c.Pid(), 0) {
			err := c.Wait()
			t.Fatalf("the cli ended before it had %d children: %v; stderr:\n%s", want, err, stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cli has %d children at the test's deadline, want %d", len(kids), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gone waits up to d for pid to be gone or a zombie that is not ours.
func gone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A prime near 2^57 whose trial division takes seconds on two workers.
const slowPrime = "100109100129162907"

func TestInterruptStopsEverything(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			c, stderr, workers := startCLI(t, 2, "primes", "--mode", "procs", "--procs", "2", slowPrime)
			sent := time.Now()
			if err := c.Process().Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := c.Wait()
			took := time.Since(sent)
			var ce *procs.ChildError
			if !errors.As(err, &ce) || ce.ExitCode != 128+int(sig) {
				t.Fatalf("cli after %v: %v, want exit status %d", sig, err, 128+int(sig))
			}
			t.Logf("the cli exited %v after %v", took, sig)
			if !strings.Contains(stderr.String(), "interrupted") {
				t.Errorf("stderr %q does not say it was interrupted", stderr)
			}
			for _, pid := range workers {
				if !gone(pid, 0) {
					t.Errorf("worker %d still running after the cli exited", pid)
				}
			}
		})
	}
}

func TestKilledParentTakesWorkersDown(t *testing.T) {
	c, _, workers := startCLI(t, 2, "primes", "--mode", "procs", "--procs", "2", slowPrime)
	c.Process().Signal(syscall.SIGKILL)
	c.Wait()
	// Pdeathsig kills them; how soon is the machine's load, so the wait
	// is a hang guard, not a speed.
	for _, pid := range workers {
		if !gone(pid, 30*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("worker %d still running 30s after its parent was killed", pid)
		}
	}
}

func TestFactorInterruptStopsPool(t *testing.T) {
	c, stderr, workers := startCLI(t, 2, "factor", "--procs", "2", "--upto", "20000000")
	sent := time.Now()
	if err := c.Process().Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := c.Wait()
	took := time.Since(sent)
	var ce *procs.ChildError
	if !errors.As(err, &ce) || ce.ExitCode != 128+int(syscall.SIGINT) {
		t.Fatalf("cli after SIGINT: %v (stderr %q), want exit status %d", err, stderr, 128+int(syscall.SIGINT))
	}
	t.Logf("the cli exited %v after SIGINT", took)
	for _, pid := range workers {
		if !gone(pid, 0) {
			t.Errorf("worker %d still running after the cli exited", pid)
		}
	}
}
