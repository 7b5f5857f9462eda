package pool

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"ipcplay/procs"
)

// Roles of the review's tests (issue 15's pool review).
const (
	roleSlow = "pool-test-slow"
)

func init() {
	procs.Register(roleSlow, WorkerMain(Typed(func(ctx context.Context, t slowTask) (int, error) {
		time.Sleep(time.Duration(t.Run))
		return t.N, nil
	})))
}

// slowTask runs for Run and takes Decode to decode in the worker (a large
// task, a GC pause, a descheduled process).
type slowTask struct {
	N           int
	Run, Decode int64 // ns
}

func (s slowTask) EncodeMsgpack(enc *msgpack.Encoder) error {
	return enc.Encode([]int64{int64(s.N), s.Run, s.Decode})
}

func (s *slowTask) DecodeMsgpack(dec *msgpack.Decoder) error {
	var v []int64
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if len(v) != 3 {
		return errors.New("slowTask: want 3 numbers")
	}
	s.N, s.Run, s.Decode = int(v[0]), v[1], v[2]
	time.Sleep(time.Duration(s.Decode))
	return nil
}

// TestWatchdogChunkBoundary: the worker's watchdog counted a chunk's first
// task from when it first saw the previous chunk's last task start, so a
// last task that ran for most of the timeout followed by a first task
// that took the rest to decode was reported hung, under the index of the
// previous task, in the new chunk: task 1, which had run for 0.8 of the
// timeout and never started its work, failed with ErrTaskTimeout. Each
// task runs under the limit here; none may fail.
func TestWatchdogChunkBoundary(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleSlow, Workers: 1, InFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	if err := p.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	const limit = time.Second
	tasks := []slowTask{
		{N: 0, Run: int64(limit * 6 / 10)},
		{N: 1, Decode: int64(limit * 8 / 10)},
	}
	got, err := MapWith[slowTask, int](ctx, p, tasks, MapOptions{ChunkSize: 1, TaskTimeout: limit})
	if err != nil {
		t.Fatalf("map of two tasks under the limit: %v (events %+v)", err, p.Events())
	}
	if got[0] != 0 || got[1] != 1 {
		t.Errorf("results %v, want [0 1]", got)
	}
}
