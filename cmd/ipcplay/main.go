//go:build linux

// Command ipcplay runs small, honest experiments in inter-process
// communication on Linux: the same work done by child processes and by
// goroutines, measured side by side. Run "ipcplay help" for the labs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/benchlab"
	"ipcplay/cmd/ipcplay/internal/chaos"
	"ipcplay/cmd/ipcplay/internal/doctor"
	"ipcplay/cmd/ipcplay/internal/factor"
	"ipcplay/cmd/ipcplay/internal/pipelab"
	"ipcplay/cmd/ipcplay/internal/primes"
	"ipcplay/cmd/ipcplay/internal/queuelab"
	"ipcplay/cmd/ipcplay/internal/rpclab"
	"ipcplay/cmd/ipcplay/internal/shmlab"
	"ipcplay/procs"
)

func main() {
	registerRoles()
	procs.Init() // runs and exits here when this process is a child role
	os.Exit(cli(os.Args[1:]))
}

// registerRoles is the one place the real binary registers its child roles.
// Each package's TestMain registers the roles its own tests start.
func registerRoles() {
	primes.RegisterRoles()
	pipelab.RegisterRoles()
	shmlab.RegisterRoles()
	queuelab.RegisterRoles()
	factor.RegisterRoles()
	rpclab.RegisterRoles()
	benchlab.RegisterRoles()
	chaos.RegisterRoles()
}

// program is the table of labs, in learning order; main hands it to base,
// as cmd/go's main fills base.Go.Commands.
func program() *base.Program {
	return &base.Program{
		Name:  "ipcplay",
		Short: "labs that make Linux inter-process communication visible and measurable",
		Commands: []*base.Command{
			primes.Command(),
			pipelab.Command(),
			shmlab.Command(),
			queuelab.Command(),
			factor.Command(),
			rpclab.RPCCommand(),
			rpclab.ManagerCommand(),
			benchlab.Command(),
			benchlab.CompareCommand(),
			chaos.Command(),
			doctor.Command(),
		},
		Version: version,
	}
}

// cli runs ipcplay with args on the process's own streams and returns the
// exit status. SIGINT and SIGTERM cancel the running lab with a
// *base.Interrupt cause; it stops its children before cli returns.
func cli(args []string) int {
	ctx, stop := signalContext(context.Background())
	defer stop()
	return program().Main(ctx, base.OSEnv(), args)
}

// signalContext returns a context cancelled with a *base.Interrupt cause
// when SIGINT or SIGTERM arrives, and a stop function that ends the
// goroutine watching for them.
func signalContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case s := <-sigs:
			cancel(&base.Interrupt{Signal: s.(syscall.Signal)})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		<-exited
		cancel(context.Canceled)
	}
}
