package pipelab

import (
	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/procs"
)

// RegisterRoles registers the lab's child roles with procs: the child of
// the deadlock scenarios and the child of the benchmarks.
func RegisterRoles() {
	procs.Register(ChildRole, ChildMain)
	procs.Register(BenchRole, BenchMain)
}

// Command returns the pipes command and its subcommands deadlock, capacity
// and bench.
func Command() *base.Command {
	return &base.Command{
		UsageLine: "pipes <subcommand> [flags]",
		Short:     "pipe capacity, the pipe-buffer deadlocks made real, proven from /proc and fixed, and pipe speed",
		Long: `The pipes lab: what a pipe holds, what happens to a program that forgets it, and how fast a pipe between two processes is next to a channel between two goroutines.

Examples:
  ipcplay pipes capacity
  ipcplay pipes deadlock --bytes 32K,64K,65K,1M
  ipcplay pipes bench --rounds 5000 --write 4K,64K,1M`,
		Commands: []*base.Command{deadlockCommand(), capacityCommand(), benchCommand()},
	}
}

// noArgs refuses positional arguments, which no pipes subcommand takes.
func noArgs(args []string) error {
	if len(args) > 0 {
		return base.Usagef("unexpected argument %q: the subcommand takes only flags", args[0])
	}
	return nil
}
