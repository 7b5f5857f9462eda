// Package chaos is the chaos lab of ipcplay: it SIGKILLs processes in the
// middle of real work and checks that nothing was lost without a word,
// nothing hung and nothing was left behind.
//
// A run is a list of iterations planned from a seed alone ([Plan]): each
// iteration runs one target (a procs/pool map, an ipc.Queue with producers
// and consumers, or processes looping on a shm.Mutex) and kills one or more
// of its processes when the work has gone a planned distance (results
// delivered, values consumed, lock rounds). The same seed gives the same
// plan. Each iteration has a deadline; a passed one is a hang.
//
// Afterwards each iteration checks its results: every one delivered
// exactly once, or reported lost together with the dead process that held
// it (a pool task failed after too many deaths, named by the death that
// failed it; the values a dead queue consumer had fetched ahead, which the
// hub counts as stranded; a lock round a holder was killed inside, named
// by the takeover that followed). And the run compares what this process
// holds before and after, from /proc: child processes, open fds, memfds,
// and socket files in ipcplay's private temporary directories.
package chaos
