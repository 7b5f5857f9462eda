// Package queuelab is the queue lab of ipcplay: producers and consumers
// exchange messages through an ipc.Queue as child processes, and through a
// Go channel as goroutines, and the lab checks that every message arrived
// exactly once and measures throughput and latency.
//
// Every message carries its producer, its sequence number, a send time read
// from CLOCK_MONOTONIC (one clock for every process of the machine, unlike
// the monotonic reading inside a time.Time, which only means something in
// the process that took it) and a payload of the configured size. Consumers
// stamp the receive time with the same clock, so latency is receive minus
// send, whichever processes the two ends ran in.
//
// In [Procs] mode consumers stream a 24-byte record per message back to the
// parent on their stdout (producer, sequence, send and receive times), and
// the parent does the exactly-once accounting; in [Goroutines] mode the
// consumers fill the same records in memory.
package queuelab
