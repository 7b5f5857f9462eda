package procs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
)

// A Func is the entry point of a child role. It receives the arguments the
// parent passed to [Command] (without argv[0]). A non-nil error is printed to
// stderr and makes the child exit with status 1.
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
// contains a path separator or whitespace, or is already registered: all of
// these are programming errors.
func Register(name string, f Func) {
	if name == "" || strings.ContainsAny(name, "/ \t\n") {
		panic(fmt.Sprintf("procs: invalid role name %q", name))
	}
	if f == nil {
		panic("procs: Register of nil Func for role " + name)
	}
	rolesMu.Lock()
	defer rolesMu.Unlock()
	if _, dup := roles[name]; dup {
		panic("procs: role " + name + " registered twice")
	}
	roles[name] = f
}

// Registered reports whether a role called name has been registered.
func Registered(name string) bool {
	rolesMu.Lock()
	defer rolesMu.Unlock()
	_, ok := roles[name]
	return ok
}

func lookup(name string) (Func, bool) {
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
// the role returns nil, and 1 after printing "role: error" to stderr otherwise.
func Init() {
	if len(os.Args) == 0 {
		return
	}
	if _, ok := lookup(os.Args[0]); !ok {
		return
	}
	_, err := Dispatch(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[0], err)
		os.Exit(1)
	}
	os.Exit(0)
}
