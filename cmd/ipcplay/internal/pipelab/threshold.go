package pipelab

// Threshold is the smallest byte count at which scenario sc deadlocks with
// pipes of capacity bytes and a child writing chunk bytes at a time (zero
// means the default, 4096):
//
//   - WaitThenRead and StdoutThenStderr: capacity + 1. The child's write of
//     the first byte the pipe cannot hold blocks until someone reads, and
//     no one reads until the child exits.
//   - BothDirections: 2*capacity + chunk + 1. The child's stdout fills,
//     the child stops with one chunk read from stdin and not yet written,
//     then stdin fills, and the parent's next byte blocks.
//
// A capacity that is a whole number of pages and a chunk that divides it
// make this exact; TestThreshold checks both sides of it.
func Threshold(sc Scenario, capacity, chunk int) int64 {
	if chunk <= 0 {
		chunk = Config{}.chunk()
	}
	if sc == BothDirections {
		return 2*int64(capacity) + int64(chunk) + 1
	}
	return int64(capacity) + 1
}

// FullPipe names the pipe whose filling blocks the child in sc.
func FullPipe(sc Scenario) string {
	if sc == StdoutThenStderr {
		return "stderr"
	}
	return "stdout"
}
