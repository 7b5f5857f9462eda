// Package factor is the pool lab of ipcplay: the classic factorize_naive(n)
// for every n in 1..N, mapped over a procs/pool of worker processes and over
// goroutines, with the same chunking, so that the cost of a message between
// processes shows, and falls as chunks grow.
//
// Each task is one n; its result is the list of its prime factors with
// multiplicity, as in the classic lab. A run reports the sum of all those
// factors, which SieveSum computes independently, so any run (including one
// whose worker was killed mid-way) can be verified.
package factor
