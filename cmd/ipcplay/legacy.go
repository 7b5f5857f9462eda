package main

// TODO(issue 13): this bridge runs the labs not yet moved into their own
// folders; it goes with the last of them.

import (
	"context"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/factor"
	"ipcplay/cmd/ipcplay/internal/pipelab"
	"ipcplay/cmd/ipcplay/internal/queuelab"
	"ipcplay/procs"
)

func registerLegacyRoles() {
	procs.Register(pipelab.ChildRole, pipelab.ChildMain)
	procs.Register(pipelab.BenchRole, pipelab.BenchMain)
	queuelab.RegisterRoles()
	procs.Register(factor.WorkerRole, factor.WorkerMain)
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
