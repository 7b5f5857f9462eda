// Command ipcplay runs small, honest experiments in inter-process
// communication on Linux: the same work done by child processes and by
// goroutines, measured side by side. Run "ipcplay help" for the labs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"ipcplay/procs"
)

func main() {
	registerRoles()
	procs.Init() // runs and exits here when this process is a child role

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], newEnv(os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}
