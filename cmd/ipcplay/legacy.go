//go:build linux

package main

// TODO(issue 13): this bridge runs the labs not yet moved into their own
// folders; it goes with the last of them.

import (
	"context"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/rpclab"
	"ipcplay/cmd/ipcplay/internal/shmlab"
	"ipcplay/procs"
)

func registerLegacyRoles() {
	procs.Register(rpclab.ManagerServerRole, rpclab.ManagerServerMain)
	procs.Register(rpclab.ManagerWorkerRole, rpclab.ManagerWorkerMain)
	procs.Register(rpclab.ManagerShmWorkerRole, rpclab.ManagerShmWorkerMain)
	shmlab.RegisterRoles()
}

func legacy(c *command, usage string) *base.Command {
	return &base.Command{
		UsageLine: usage,
		Short:     c.short,
		Raw:       true,
		Run: func(ctx context.Context, e *base.Env, args []string) error {
			err := c.run(ctx, &env{stdout: e.Stdout, stderr: e.Stderr, progress: e.StderrTTY}, args)
			if ue, ok := err.(*usageError); ok {
				return base.Usagef("%s", ue.msg)
			}
			return err
		},
	}
}
