package pool

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"ipcplay/ipc"
)

// ExitHung is the exit status of a worker that stopped itself because one
// of its tasks ran past the map's TaskTimeout.
const ExitHung = 3

// watchdog watches a worker's tasks when their chunk has a timeout. The
// serving goroutine calls begin, started before each task and end; the
// watchdog's own goroutine polls the count of started tasks a few times
// per timeout, so the serving goroutine pays one atomic add per task and
// never reads the clock. When a task has been seen running for a whole
// timeout, the watchdog tells the parent which one and exits the process:
// Go cannot stop a goroutine stuck in a task.
type watchdog struct {
	conn  *ipc.Conn
	seq   atomic.Uint64 // tasks started
	idx   atomic.Int64  // index in its chunk of the task running
	chunk atomic.Uint64 // id of the chunk running
	limit atomic.Int64  // the task timeout in ns; 0 while nothing is watched
	done  chan struct{}
	wg    sync.WaitGroup
}

func startWatchdog(conn *ipc.Conn) *watchdog {
	wd := &watchdog{conn: conn, done: make(chan struct{})}
	wd.wg.Go(wd.loop)
	return wd
}

// begin starts watching chunk id, whose tasks may each run for limit. It
// counts as a start, of task 0 (whose decoding is its own): otherwise the
// watchdog, which may not have looked between chunks, would count the
// decoding of this chunk's first task in the time of the previous
// chunk's last, and report a task that never ran as hung.
func (wd *watchdog) begin(id uint64, limit time.Duration) {
	wd.chunk.Store(id)
	wd.idx.Store(0)
	wd.limit.Store(int64(limit))
	wd.seq.Add(1)
}

// started records that task i of the chunk is starting.
func (wd *watchdog) started(i int) {
	wd.idx.Store(int64(i))
	wd.seq.Add(1)
}

// end stops watching until the next begin.
func (wd *watchdog) end() { wd.limit.Store(0) }

// stop ends the watchdog's goroutine and waits for it.
func (wd *watchdog) stop() {
	close(wd.done)
	wd.wg.Wait()
}

// idlePoll is how often the watchdog looks while no chunk is watched.
const idlePoll = 100 * time.Millisecond

func (wd *watchdog) loop() {
	var (
		lastSeq uint64
		since   time.Time // when lastSeq was first seen: no earlier than its task began
	)
	t := time.NewTimer(idlePoll)
	defer t.Stop()
	for {
		select {
		case <-wd.done:
			return
		case <-t.C:
		}
		limit := time.Duration(wd.limit.Load())
		seq := wd.seq.Load()
		now := time.Now()
		if limit <= 0 {
			lastSeq, since = seq, now
			t.Reset(idlePoll)
			continue
		}
		if seq != lastSeq {
			lastSeq, since = seq, now
		} else if now.Sub(since) >= limit {
			idx, id := wd.idx.Load(), wd.chunk.Load()
			if wd.seq.Load() == seq && wd.limit.Load() > 0 {
				wd.fire(id, int(idx), limit)
			}
		}
		t.Reset(min(max(limit/8, time.Millisecond), idlePoll))
	}
}

// fire reports task idx of chunk id as hung and exits.
func (wd *watchdog) fire(id uint64, idx int, limit time.Duration) {
	fmt.Fprintf(os.Stderr, "pool worker: task %d of chunk %d still running after %v\n", idx, id, limit)
	wd.conn.Send(&resultMsg{ID: id, Hung: idx + 1})
	os.Exit(ExitHung)
}
