// Package shmlab holds the logic of the "ipcplay shm" labs: what Python's
// multiprocessing offers as Value, Array and Lock, done with package shm's
// typed arrays and futex locks in a memfd region shared by child processes.
//
//   - [Counter]: P workers increment one shared counter N times each,
//     without synchronization (updates are lost, and counted), with atomic
//     adds, or under a mutex; as processes with shm's Mutex and as goroutines
//     with sync/atomic and sync.Mutex.
//   - [Square]: the classic example, a child squares a list into a shared
//     array and writes the sum into a shared value.
//   - [Bench]: moving bytes to another process through a shared array and
//     through a pipe and as msgpack over a socket, against a copy within
//     one process.
//   - [Cond]: the notebook's Condition example, a producer and consumers
//     sharing a bounded buffer under a mutex and two condition variables
//     (shm.Mutex and shm.Cond across processes, sync.Cond across
//     goroutines), with wake-up latency and futex calls per item.
//
// The children are this binary run again (see package procs); call
// [RegisterRoles] from main and from TestMain before procs.Init.
package shmlab
