package pool

import (
	"time"

	"ipcplay/ipc"
)

// maxChunkBytes bounds a chunk's encoded tasks: a chunk is sent once it
// holds this many bytes, whatever its size in tasks, so that large tasks
// never make a message too large for the socket's frame limit.
const maxChunkBytes = 1 << 20

// maxValueBytes bounds one task's or one result's encoding: what fits in
// a frame (ipc.DefaultMaxFrame) beside a chunk just under maxChunkBytes
// and the message's own fields. A larger one could not be sent: it fails
// with ErrTooLarge instead of killing workers.
const maxValueBytes = ipc.DefaultMaxFrame - maxChunkBytes - 4096

// Chunk sizes the pool chooses itself (MapOptions.ChunkSize zero).
const (
	// chunkTarget is how long a worker should take over one chunk. A
	// chunk costs c in messages and wakeups, and the last chunks leave
	// workers unevenly busy for about half a chunk: for a run of R per
	// worker the sum c/T + T/2R is least at T = sqrt(2cR). On a 2-core VM
	// c measured 40-100 µs of CPU with a task per chunk
	// (BenchmarkPool/chunk=1), but 165 µs in the factor lab's steady
	// state (its CPU per task at 1,000 tasks a chunk against 10,000, at
	// load 7), where each answer also wakes the parent from idle and,
	// with it, the Go runtime's sysmon thread for a while: T is then
	// 6-13 ms for runs of a tenth to half a second.
	chunkTarget = 10 * time.Millisecond
	// perWorkerChunks is the fewest chunks each worker gets when the
	// input's length is known, so that the load balances.
	perWorkerChunks = 8
	// maxAutoChunk caps a chosen chunk size.
	maxAutoChunk = 1 << 16
)

// sizer chooses the size of each chunk. A size set in MapOptions is kept.
// Otherwise the first round of chunks, one per worker, holds one task each,
// and each next round twice as many, until the first chunk is answered
// (the dispatcher fills every worker at once, so doubling per chunk would
// hand the last worker 2^(2 x workers) tasks of unknown cost before it
// knows any); from then on the size is what a
// worker runs in about chunkTarget, from the time it took over the chunks
// answered so far (a running average weighted by their tasks, so that
// one slow chunk does not swing it, and the first chunks of a task or
// two, whose time is mostly the round trip, are soon outweighed),
// growing at most twofold per chunk. When the input's length is
// known, the size is also at most length / (workers x perWorkerChunks).
type sizer struct {
	size    int  // tasks in the next chunk
	fixed   bool // set by the caller
	limit   int  // the largest size to choose
	workers int  // chunks per round before the first answer
	blind   int  // chunks submitted before the first answer

	perTask time.Duration // running estimate of one task's time on a worker
	took    float64       // decayed sum of the answered chunks' times, in ns
	tasks   float64       // decayed sum of their tasks
}

func newSizer(o MapOptions, workers int) sizer {
	if o.ChunkSize > 0 {
		return sizer{size: o.ChunkSize, fixed: true}
	}
	s := sizer{size: 1, limit: maxAutoChunk, workers: max(workers, 1)}
	if o.Len > 0 {
		s.limit = max(1, min(maxAutoChunk, o.Len/(workers*perWorkerChunks)))
	}
	return s
}

// submitted is told that a chunk of n tasks was closed.
func (s *sizer) submitted(n int) {
	if s.fixed {
		return
	}
	var next int
	if s.perTask > 0 {
		next = min(2*n, int(chunkTarget/s.perTask)+1)
	} else {
		s.blind++
		next = 1 << min(s.blind/s.workers, 16)
	}
	s.size = max(1, min(next, s.limit))
}

// answered is told that a worker took d over a chunk of n tasks.
func (s *sizer) answered(n int, d time.Duration) {
	if s.fixed || n <= 0 || d <= 0 {
		return
	}
	// Each answer weighs as many tasks as it had, and the older ones
	// fade by a quarter per answer.
	s.took = 0.75*s.took + float64(d)
	s.tasks = 0.75*s.tasks + float64(n)
	s.perTask = max(time.Duration(s.took/s.tasks), 1)
	// The chunk being built was sized before this answer: no larger than
	// the target now.
	s.size = max(1, min(s.size, int(chunkTarget/s.perTask)+1))
}
