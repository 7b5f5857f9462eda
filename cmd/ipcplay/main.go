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
	os.Exit(cli(os.Args[1:]))
}

// cli runs ipcplay with args on the process's own streams and returns the
// exit status. SIGINT and SIGTERM cancel the running lab, which stops its
// children before cli returns.
func cli(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, newEnv(os.Stdout, os.Stderr))
}
