package procs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Self is the executable every child runs: this very binary, as the kernel
// sees it. Replacing the file on disk while ipcplay runs changes nothing.
const Self = "/proc/self/exe"

// DefaultWaitDelay is how long [Cmd.Wait] waits, once the child's context is
// done or the child has exited, before it kills the child with SIGKILL and
// stops waiting for its output.
const DefaultWaitDelay = 500 * time.Millisecond

// Cmd is a child process running a registered role. Set its fields before
// calling [Cmd.Start]; a Cmd cannot be reused.
type Cmd struct {
	// Role is the registered entry point the child runs; it becomes the
	// child's argv[0], which is also what ps shows.
	Role string

	// Args are the arguments passed to the role.
	Args []string

	// Index numbers the child among its siblings, for error messages.
	// Command sets it to -1, which leaves it out.
	Index int

	// ExtraFiles are inherited by the child: entry i becomes fd 3+i. A nil
	// entry is closed in the child at exec, but the child's Go runtime may
	// open files of its own into the free number (since Go 1.25 it keeps
	// its cgroup CPU limit files open), so a role must not count on a slot
	// being closed. As with os/exec, the
	// files stay open in the parent: the caller closes its copy of a pipe or
	// socket end meant for the child right after Start, or the other end
	// never sees EOF.
	ExtraFiles []*os.File

	// Stdin, Stdout and Stderr are connected as in os/exec: nil means
	// /dev/null, an *os.File is handed to the child as is, and any other
	// value gets a pipe and a copying goroutine that Wait waits for.
	// Whatever Stderr is, the last few KiB the child writes there are also
	// kept for [ChildError].
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// Env is the child's environment; nil means the parent's.
	Env []string

	// WaitDelay bounds how long Wait waits after the context is done or
	// the child has exited; see os/exec.Cmd.WaitDelay. Zero means
	// DefaultWaitDelay.
	WaitDelay time.Duration

	ctx    context.Context
	cmd    *exec.Cmd
	stderr *tailBuffer
	// closeAfterStart are the files SetFile handed over: the parent's
	// copies, closed once the child has its own (or Start failed).
	closeAfterStart []*os.File
}

// SetFile places f in descriptor slot fd of the child ([FDControl],
// [FDShm], [FDExtra] and up), growing ExtraFiles as needed, and hands f
// over: Start closes the parent's copy once the child has its own, or if
// it fails, as os/exec does with the pipes it makes. Use it for the child's
// end of a socket pair or pipe, whose other end must see EOF when the
// child exits. A file the parent keeps using (a memfd shared by several
// children) goes in ExtraFiles instead, and the caller closes it.
func (c *Cmd) SetFile(fd int, f *os.File) {
	i := fd - 3
	if i < 0 {
		panic(fmt.Sprintf("procs: SetFile(%d): slots start at 3", fd))
	}
	for len(c.ExtraFiles) <= i {
		c.ExtraFiles = append(c.ExtraFiles, nil)
	}
	c.ExtraFiles[i] = f
	c.closeAfterStart = append(c.closeAfterStart, f)
}

// closeHandedOver closes the files SetFile handed over.
func (c *Cmd) closeHandedOver() {
	for _, f := range c.closeAfterStart {
		f.Close()
	}
	c.closeAfterStart = nil
}

// Command returns a Cmd that runs role with args in a child process. When ctx
// is done the child is sent SIGTERM, and SIGKILL WaitDelay later.
func Command(ctx context.Context, role string, args ...string) *Cmd {
	return &Cmd{Role: role, Args: args, Index: -1, ctx: ctx}
}

// Start starts the child. It fails if the role is not registered in this
// process: parent and child are the same binary, so a role the parent does
// not know could not run in the child either.
func (c *Cmd) Start() error {
	if c.cmd != nil {
		return errors.New("procs: Start called twice")
	}
	defer c.closeHandedOver()
	if c.ctx == nil {
		return errors.New("procs: Cmd not made by Command")
	}
	if !Registered(c.Role) {
		return fmt.Errorf("start %s: role not registered", c.Role)
	}
	cmd := exec.CommandContext(c.ctx, Self, c.Args...)
	cmd.Args[0] = c.Role
	cmd.Env = c.Env
	cmd.ExtraFiles = c.ExtraFiles
	cmd.Stdin = c.Stdin
	cmd.Stdout = c.Stdout
	c.stderr = newTailBuffer(1024, 4096)
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(c.Stderr, c.stderr)
	} else {
		cmd.Stderr = c.stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Killed if the thread that started it exits: see the package doc.
		Pdeathsig: syscall.SIGKILL,
		// Out of the terminal's foreground group: Ctrl-C reaches the
		// parent only, and the parent stops its children itself.
		Setpgid: true,
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = c.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = DefaultWaitDelay
	}
	c.cmd = cmd
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.name(), err)
	}
	return nil
}

// Wait waits for the child to exit and for its output to be copied. It
// returns nil if the child exited with status 0, and a *ChildError otherwise.
func (c *Cmd) Wait() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return errors.New("procs: Wait called before Start")
	}
	err := c.cmd.Wait()
	if err == nil {
		return nil
	}
	// The child exited 0, but its output was still being copied when
	// WaitDelay ran out: on a loaded machine the copying goroutine may not
	// run for that long. The child succeeded; only the tail of its stderr
	// may be short.
	if errors.Is(err, exec.ErrWaitDelay) && c.cmd.ProcessState != nil && c.cmd.ProcessState.Success() {
		return nil
	}
	ce := &ChildError{
		Role:     c.Role,
		Index:    c.Index,
		PID:      c.cmd.Process.Pid,
		ExitCode: -1,
		Stderr:   c.stderr.Bytes(),
		Err:      err,
	}
	if st := c.cmd.ProcessState; st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				ce.ExitCode = ws.ExitStatus()
			case ws.Signaled():
				ce.Signal = ws.Signal()
			}
		}
	}
	// A child that died of a signal once its context was done was, as
	// far as we can tell, stopped by us. One that exited with a status
	// failed on its own, even if the context ended meanwhile.
	if c.ctx.Err() != nil && ce.Signal != nil {
		ce.Cause = context.Cause(c.ctx)
	}
	return ce
}

// Run starts the child and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Process returns the running child, or nil before Start.
func (c *Cmd) Process() *os.Process {
	if c.cmd == nil {
		return nil
	}
	return c.cmd.Process
}

// ProcessState returns the exited child's state, with its rusage
// (SysUsage), or nil before Wait returns.
func (c *Cmd) ProcessState() *os.ProcessState {
	if c.cmd == nil {
		return nil
	}
	return c.cmd.ProcessState
}

// Pid returns the child's process id, or 0 before Start.
func (c *Cmd) Pid() int {
	if p := c.Process(); p != nil {
		return p.Pid
	}
	return 0
}

func (c *Cmd) name() string {
	if c.Index >= 0 {
		return fmt.Sprintf("%s[%d]", c.Role, c.Index)
	}
	return c.Role
}
