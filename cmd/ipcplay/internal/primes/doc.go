// Package primes is the primality lab of ipcplay: parallel trial division
// with an early-exit flag in shared memory, run on child processes and on
// goroutines with the same worker code, as in the classic course lab.
//
// A check first tries the divisors below [SerialCutoff] in the caller. What
// is left, the odd candidates from SerialCutoff to isqrt(n), is split into
// one range per worker. Every worker tries its candidates in blocks of
// CheckEvery, publishes how many it has tried into its slot of a shared int64
// array, and stops when the shared stop flag is set. The worker that finds a
// divisor records it and sets the flag.
//
// In [Procs] mode the workers are child processes (role [WorkerRole]) that
// map the same memfd region; in [Goroutines] mode they are goroutines over
// ordinary memory. The same function, scan, does the work in both.
package primes
