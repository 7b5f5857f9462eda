// Package queuelab is the queue lab of ipcplay: producers and consumers
// exchange values through an ipc.Queue as child processes, and through a Go
// channel as goroutines; the lab checks that every value arrived exactly
// once and in order per producer, and measures messages per second beside
// what bounds them: the raw socket at 1 to 4,096 messages per write(2), a
// bare channel, and Python's multiprocessing.Queue.
//
// Both sides move the same values and do the same checks. A value
// (value.go) holds its producer and sequence number; one in up to 1,024
// also holds its send time from nanotime, the runtime's CLOCK_MONOTONIC
// read through the vDSO (no system call), which every process on the
// machine shares, so a consumer process can subtract a producer's time.
// Each consumer keeps a checker: a bit per value per producer, the next
// sequence number expected from each producer, and the sampled latencies;
// the parent merges them ([Procs]: a child writes its checker on stdout
// when it is done).
//
// [Procs] children (children.go) use the queue's fast path (PutBatch and
// GetBatch of raw bytes, windows from ipc.QueueOptions) and wait at a
// start gate until all are ready, so start-up is outside the timed window
// and the cost counter (procs/cost) attaches before any value moves.
// [Goroutines] (goroutines.go) use a channel of a fixed-size array.
// baselines.go has the round trips, the raw socket and Python rows;
// deadlock.go the join-deadlock lab.
package queuelab
