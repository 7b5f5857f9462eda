// Package labtest runs a lab's command line in a test, as a user would, and
// checks that it left no child process behind.
package labtest

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/procs"
)

// Run runs "ipcplay ARGS" over the given commands in this process, with
// stdout and stderr not terminals and a deadline of two minutes, and fails
// the test if a child process is left afterwards.
func Run(t *testing.T, cmds []*base.Command, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	p := &base.Program{Name: "ipcplay", Commands: cmds}
	code = p.Main(ctx, base.TestEnv(&out, &errOut), args)
	NoChildren(t)
	return code, out.String(), errOut.String()
}

// NoChildren fails the test if this process has a child.
func NoChildren(t *testing.T) {
	t.Helper()
	kids, err := procs.Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) > 0 {
		t.Fatalf("child processes left: %v", kids)
	}
}
