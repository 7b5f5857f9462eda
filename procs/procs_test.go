package procs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The roles the tests start. Each is this test binary run again, the way
// os/exec's own tests use their helper process.
const (
	roleExit       = "procs-test-exit"       // exit with the status in args[0]
	roleBlock      = "procs-test-block"      // print "ready", then read stdin to EOF
	roleStderr     = "procs-test-stderr"     // write args[0] bytes to stderr, then fail
	roleFiles      = "procs-test-files"      // check the slots named in args
	roleGrandchild = "procs-test-grandchild" // start roleBlock, print its pid, block
	roleReady      = "procs-test-ready"      // write one byte to the pipe in FDControl
	roleCode       = "procs-test-code"       // return ExitCode(args[1]), "alone" or "wrapped" (args[0])
)

func TestMain(m *testing.M) {
	Register(roleExit, func(ctx context.Context, args []string) error {
		code, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "about to exit", code)
		os.Exit(code)
		return nil
	})
	Register(roleBlock, func(ctx context.Context, args []string) error {
		fmt.Println("ready")
		_, err := io.Copy(io.Discard, os.Stdin)
		return err
	})
	Register(roleStderr, func(ctx context.Context, args []string) error {
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		w := bufio.NewWriter(os.Stderr)
		w.WriteString("first line\n")
		for i := 0; i < n; i++ {
			w.WriteByte('x')
		}
		w.WriteString("\n")
		w.Flush()
		return errors.New("last words")
	})
	Register(roleFiles, func(ctx context.Context, args []string) error {
		// args are fd:kind pairs; print "ok" or the first error.
		for _, a := range args {
			fdText, kindText, _ := strings.Cut(a, ":")
			fd, _ := strconv.Atoi(fdText)
			kind := map[string]Kind{"memfd": Memfd, "socket": Socket, "pipe": Pipe, "any": AnyKind}[kindText]
			f, err := ChildFile(fd, kind, a)
			if err != nil {
				fmt.Println(err)
				return nil
			}
			f.Close()
		}
		fmt.Println("ok")
		return nil
	})
	Register(roleGrandchild, func(ctx context.Context, args []string) error {
		c := Command(ctx, roleBlock)
		c.Stdin = os.Stdin // blocks until our parent closes it, or we die
		out, w, err := os.Pipe()
		if err != nil {
			return err
		}
		c.Stdout = w
		err = c.Start()
		w.Close()
		if err != nil {
			return err
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			return fmt.Errorf("grandchild said %q: %v", line, err)
		}
		fmt.Println(c.Pid())
		return c.Wait()
	})
	Register(roleReady, func(ctx context.Context, args []string) error {
		f, err := ChildFile(FDControl, Pipe, "ready")
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Write([]byte{'r'})
		return err
	})
	Register(roleCode, func(ctx context.Context, args []string) error {
		code, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		if args[0] == "alone" {
			return ExitCode(code)
		}
		return fmt.Errorf("gave up: %w", ExitCode(code))
	})
	Init()
	os.Exit(m.Run())
}

// testContext bounds every test that starts a process.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testDeadline is when a test polling for a process's state gives up: the
// same hang guard as testContext, not a speed the test expects.
func testDeadline(t *testing.T) time.Time {
	t.Helper()
	return time.Now().Add(30 * time.Second)
}

func assertNoChildren(t *testing.T) {
	t.Helper()
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) > 0 {
		t.Fatalf("child processes left: %v", kids)
	}
}

func TestExitCode(t *testing.T) {
	c := Command(testContext(t), roleExit, "3")
	c.Index = 7
	err := c.Run()
	var ce *ChildError
	if !errors.As(err, &ce) {
		t.Fatalf("Run = %v, want a *ChildError", err)
	}
	if ce.ExitCode != 3 || ce.Signal != nil || ce.Cause != nil {
		t.Fatalf("ChildError = %+v, want exit status 3, no signal, no cause", ce)
	}
	if ce.Role != roleExit || ce.Index != 7 || ce.PID != c.Pid() || ce.PID == 0 {
		t.Fatalf("ChildError names %s[%d] pid %d, want %s[7] pid %d", ce.Role, ce.Index, ce.PID, roleExit, c.Pid())
	}
	want := fmt.Sprintf("%s[7] (pid %d): exit status 3: about to exit 3", roleExit, ce.PID)
	if ce.Error() != want {
		t.Fatalf("Error() = %q, want %q", ce.Error(), want)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("ChildError does not unwrap to *exec.ExitError")
	}
	if err := Command(testContext(t), roleExit, "0").Run(); err != nil {
		t.Fatalf("exit 0: %v", err)
	}
	assertNoChildren(t)
}

func TestRoleErrorExitsOne(t *testing.T) {
	err := Command(testContext(t), roleExit, "not-a-number").Run()
	var ce *ChildError
	if !errors.As(err, &ce) || ce.ExitCode != 1 {
		t.Fatalf("Run = %v, want exit status 1", err)
	}
	if !strings.Contains(ce.Error(), roleExit+": strconv.Atoi") {
		t.Fatalf("Error() = %q, want the role's error after its name", ce.Error())
	}
}

func TestSignal(t *testing.T) {
	c := Command(testContext(t), roleBlock)
	stdin, out := startPiped(t, c)
	defer stdin.Close()
	waitLine(t, out, "ready")
	if err := c.Process().Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := c.Wait()
	var ce *ChildError
	if !errors.As(err, &ce) || ce.Signal != syscall.SIGKILL || ce.ExitCode != -1 || ce.Cause != nil {
		t.Fatalf("Wait = %v, want killed by SIGKILL with no cause", err)
	}
	if !strings.Contains(err.Error(), "killed by signal killed") {
		t.Fatalf("Error() = %q", err)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	c := Command(ctx, roleBlock)
	stdin, out := startPiped(t, c)
	defer stdin.Close()
	waitLine(t, out, "ready")
	cancel()
	// No bound on how soon: a Wait that ignored the cancel would hang
	// until the test's deadline; the SIGTERM below is the proof.
	err := c.Wait()
	var ce *ChildError
	if !errors.As(err, &ce) || ce.Signal != syscall.SIGTERM {
		t.Fatalf("Wait = %v, want killed by SIGTERM", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want errors.Is(err, context.Canceled)", err)
	}
	assertNoChildren(t)
}

func TestStartErrors(t *testing.T) {
	c := Command(testContext(t), "procs-test-nobody")
	err := c.Start()
	if err == nil || !strings.Contains(err.Error(), "role not registered") {
		t.Fatalf("Start of an unregistered role = %v", err)
	}
	if c.Pid() != 0 || c.Process() != nil {
		t.Fatalf("unregistered role got a process")
	}
	if err := c.Wait(); err == nil {
		t.Fatalf("Wait before a successful Start = nil")
	}
	var zero Cmd
	if err := zero.Start(); err == nil {
		t.Fatalf("Start of a Cmd not made by Command = nil")
	}
	c = Command(testContext(t), roleExit, "0")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err == nil {
		t.Fatalf("second Start = nil")
	}
}

func TestRegisterPanics(t *testing.T) {
	f := func(context.Context, []string) error { return nil }
	for _, tc := range []struct {
		name string
		f    Func
	}{
		{"", f},
		{"a/b", f},
		{"a b", f},
		{roleExit, f}, // registered in TestMain
		{BareRole, f}, // built in
		{"procs-test-nil", nil},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", tc.name)
				}
			}()
			Register(tc.name, tc.f)
		}()
	}
}

func TestStderrIsBounded(t *testing.T) {
	const n = 1 << 20
	err := Command(testContext(t), roleStderr, strconv.Itoa(n)).Run()
	var ce *ChildError
	if !errors.As(err, &ce) || ce.ExitCode != 1 {
		t.Fatalf("Run = %v, want exit status 1", err)
	}
	if len(ce.Stderr) > 6<<10 {
		t.Fatalf("ChildError kept %d bytes of stderr, want at most 6 KiB", len(ce.Stderr))
	}
	s := string(ce.Stderr)
	if !strings.HasPrefix(s, "first line\n") || !strings.Contains(s, "... omitting ") {
		t.Fatalf("stderr head %q: want the first line and an omission marker", s[:min(len(s), 80)])
	}
	if !strings.HasSuffix(err.Error(), ": "+roleStderr+": last words") {
		t.Fatalf("Error() = %q, want it to end with the child's last line", err)
	}
}

func TestChildFile(t *testing.T) {
	region, err := unix.MemfdCreate("procs-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	memfd := os.NewFile(uintptr(region), "memfd")
	defer memfd.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s0, s1 := os.NewFile(uintptr(fds[0]), "s0"), os.NewFile(uintptr(fds[1]), "s1")
	defer s0.Close()
	defer s1.Close()
	all := []*os.File{s0, memfd, pr}

	for _, tc := range []struct {
		files []*os.File
		args  []string
		want  string
	}{
		{all, []string{"3:socket", "4:memfd", "5:pipe"}, "ok"},
		{all, []string{"5:any"}, "ok"},
		{all, []string{"4:pipe"}, "fd 4: want pipe, got memfd"},
		{all, []string{"3:memfd"}, "fd 3: want memfd, got socket"},
		{all, []string{"5:socket"}, "fd 5: want socket, got pipe"},
		{all, []string{"1000:socket"}, "fd 1000: want socket, got closed"},
		{all, []string{"0:memfd"}, "fd 0: want memfd, got character device"},
	} {
		c := Command(testContext(t), roleFiles, tc.args...)
		c.ExtraFiles = tc.files
		var out strings.Builder
		c.Stdout = &out
		if err := c.Run(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := strings.TrimSpace(out.String()); got != tc.want {
			t.Errorf("ChildFile %v in the child: %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestParentDeath kills a child with SIGKILL and checks that the child it
// had started dies too, by Pdeathsig, instead of living on as an orphan.
func TestParentDeath(t *testing.T) {
	c := Command(testContext(t), roleGrandchild)
	stdin, out := startPiped(t, c)
	defer stdin.Close()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		c.Process().Kill()
		c.Wait()
		t.Fatalf("reading the grandchild's pid: %v", err)
	}
	gpid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("grandchild pid %q: %v", line, err)
	}
	if kids, _ := Children(c.Pid()); len(kids) != 1 || kids[0] != gpid {
		t.Fatalf("children of %d = %v, want [%d]", c.Pid(), kids, gpid)
	}
	c.Process().Kill()
	c.Wait()

	// The orphan is reparented and reaped by init (or a subreaper); all
	// we can see is its /proc entry going away or turning into a zombie.
	// Until the test's deadline: how soon init reaps it is the
	// machine's load, not ours to bound.
	deadline := testDeadline(t)
	for {
		state, err := procState(gpid)
		if err != nil || state == 'Z' || state == 'X' {
			break
		}
		if time.Now().After(deadline) {
			unix.Kill(gpid, unix.SIGKILL)
			t.Fatalf("grandchild %d still running (state %c) long after its parent was killed", gpid, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func procState(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("bad stat %q", b)
	}
	return b[i+2], nil
}

func TestChildren(t *testing.T) {
	c := Command(testContext(t), roleBlock)
	stdin, out := startPiped(t, c)
	waitLine(t, out, "ready")
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 1 || kids[0] != c.Pid() {
		t.Errorf("Children = %v, want [%d]", kids, c.Pid())
	}
	stdin.Close()
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	assertNoChildren(t)
}

func waitLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != want {
		t.Fatalf("child said %q (%v), want %q", line, err, want)
	}
}

// startPiped starts c with pipes on its stdin and stdout and returns the
// parent's ends. The child is killed and reaped when the test ends, if the
// test has not done so itself.
func startPiped(t *testing.T, c *Cmd) (stdin *os.File, stdout *os.File) {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stdin, c.Stdout = inR, outW
	err = c.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		inW.Close()
		outR.Close()
		if p := c.Process(); p != nil {
			p.Kill()
		}
		c.Wait()
	})
	return inW, outR
}

// TestOwnFailureHasNoCause cancels the context of a child that has
// already exited with a status of its own: the error is the child's, not
// the cancellation's.
func TestOwnFailureHasNoCause(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	c := Command(ctx, roleExit, "3")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := testDeadline(t)
	for {
		state, err := procState(c.Pid())
		if err != nil {
			t.Fatal(err)
		}
		if state == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child still in state %c at the test's deadline", state)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := c.Wait()
	var ce *ChildError
	if !errors.As(err, &ce) || ce.ExitCode != 3 || ce.Cause != nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want exit status 3 and no cause", err)
	}
}
