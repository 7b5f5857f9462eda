package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// A Func is the entry point of a child role. It receives the arguments the
// parent passed to [Command] (without argv[0]). A non-nil error is printed to
// stderr and makes the child exit with status 1, or with the status an
// [ExitCode] in its chain says.
//
// SIGTERM keeps its default action in a child: it ends the process at once,
// and the kernel releases its mappings and descriptors. A role that must
// clean up something the kernel does not can catch the signal itself with
// signal.NotifyContext.
type Func func(ctx context.Context, args []string) error

var (
	rolesMu sync.Mutex
	roles   = make(map[string]Func)
)

// Register makes f the entry point of the role called name. It is meant to be
// called from main or TestMain before [Init]. Register panics if name is empty,
// contains a path separator or whitespace, or is already registered (BareRole
// always is): all of these are programming errors.
func Register(name string, f Func) {
	if name == "" || strings.ContainsAny(name, "/ \t\n") {
		panic(fmt.Sprintf("procs: invalid role name %q", name))
	}
	if f == nil {
		panic("procs: Register of nil Func for role " + name)
	}
	rolesMu.Lock()
	defer rolesMu.Unlock()
	if _, dup := roles[name]; dup || name == BareRole {
		panic("procs: role " + name + " registered twice")
	}
	roles[name] = f
}

// Registered reports whether a role called name has been registered.
// [BareRole] always is.
func Registered(name string) bool {
	_, ok := lookup(name)
	return ok
}

func lookup(name string) (Func, bool) {
	if name == BareRole {
		return bare, true
	}
	rolesMu.Lock()
	defer rolesMu.Unlock()
	f, ok := roles[name]
	return f, ok
}

// Dispatch runs the registered role named by os.Args[0], if there is one. It
// reports whether this process is a child; if it is, err is what the role
// returned. Most programs call [Init] instead.
func Dispatch(ctx context.Context) (child bool, err error) {
	if len(os.Args) == 0 {
		return false, nil
	}
	f, ok := lookup(os.Args[0])
	if !ok {
		return false, nil
	}
	return true, f(ctx, os.Args[1:])
}

// Init runs the role named by os.Args[0] and exits if this process was started
// as a child with [Command]; otherwise it returns at once. The child exits 0 if
// the role returns nil, and otherwise prints "role: error" to stderr and exits
// 1, or with the status of an [ExitCode] in the error's chain (printing
// nothing when the error is the ExitCode itself).
func Init() {
	if len(os.Args) == 0 {
		return
	}
	if _, ok := lookup(os.Args[0]); !ok {
		return
	}
	_, err := Dispatch(context.Background())
	os.Exit(Exit(os.Args[0], err))
}

// Exit reports a role's error the way [Init] does, on stderr, and returns
// the status the process should exit with: 0 for nil, the code of an
// [ExitCode] in err's chain, 1 for any other error. A main that calls
// [Dispatch] itself ends with os.Exit(procs.Exit(role, err)).
func Exit(role string, err error) int {
	if err == nil {
		return 0
	}
	code := 1
	var ec exitCode
	if errors.As(err, &ec) {
		code = int(ec)
		if err == error(ec) {
			return code
		}
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
	return code
}

// ExitCode returns an error that makes a child exit with status code
// instead of 1. A role returns it, alone or wrapped ("fmt.Errorf("...: %w",
// procs.ExitCode(3))"), rather than calling os.Exit, which would skip its
// deferred calls. Alone, nothing is printed; wrapped, the message is.
func ExitCode(code int) error { return exitCode(code) }

type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// BareRole is a role every program has without registering it: it returns
// at once. Starting it measures what any child pays before its role runs
// (fork, exec, the dynamic loader, the Go runtime, package initialization):
// see [MeasureSpawn].
const BareRole = "ipcplay-bare"

func bare(context.Context, []string) error { return nil }
