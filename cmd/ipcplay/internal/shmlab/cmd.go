package shmlab

import (
	"ipcplay/cmd/ipcplay/internal/base"
)

// Command returns the shm command: counter, square, bench, cond and
// recovery.
func Command() *base.Command {
	return &base.Command{
		UsageLine: "shm <subcommand> [flags]",
		Short:     "shared arrays and futex locks: lost updates, the classic square, sharing against copying",
		Long: `Labs on memory shared between processes: a memfd region every child maps, with typed shared arrays and process-shared locks built on futex(2), as Python's multiprocessing offers Value, Array and Lock.

  counter  P workers increment one shared counter: without
           synchronization updates are lost; with atomics or a futex
           mutex the count is exact. Processes against goroutines.
  square   a child squares a list into a shared array and writes the
           sum into a shared value.
  bench    moving bytes to another process through a shared array, a
           pipe and msgpack over a socket, against copy() in one process.
  cond     the classic Condition example: a producer and consumers
           share a bounded buffer under two condition variables,
           across processes and against sync.Cond.
  recovery how long the others wait when the holder of a shared
           lock, semaphore or barrier is SIGKILLed.

Examples:
  ipcplay shm counter --procs 4
  ipcplay shm square 1 2 3
  ipcplay shm bench --size 256MiB
  ipcplay shm cond --consumers 4
  ipcplay shm recovery --kill 20`,
		Commands: []*base.Command{counterCommand(), squareCommand(), benchCommand(), condCommand(), recoveryCommand()},
	}
}
