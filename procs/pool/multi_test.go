package pool

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"ipcplay/procs"
)

// roleMulti adds the two numbers of a multiTask, and exits with status 7 on
// the task whose A is args' poison (-1 here).
const roleMulti = "pool-test-multi"

func init() {
	procs.Register(roleMulti, WorkerMain(Typed(func(ctx context.Context, t multiTask) (int, error) {
		if t.A == -1 {
			os.Exit(7)
		}
		return t.A + t.B, nil
	})))
}

// multiTask encodes as two msgpack values back to back, as msgpack's own
// example of a CustomEncoder does (EncodeMulti / DecodeMulti).
type multiTask struct{ A, B int }

func (m multiTask) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeMulti(m.A, m.B) }

func (m *multiTask) DecodeMsgpack(dec *msgpack.Decoder) error { return dec.DecodeMulti(&m.A, &m.B) }

// TestDeathSplitsMultiValueTasks: a chunk split after a death was cut where
// the map recorded each task's start; found instead by walking the chunk's
// msgpack values, a task encoded as two values (msgpack's documented
// EncodeMulti custom encoder) made the walk count twice the tasks, and the
// death stopped the whole pool. The poison task must fail alone, every
// other result arrive.
func TestDeathSplitsMultiValueTasks(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleMulti, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	tasks := make([]multiTask, 60)
	for i := range tasks {
		tasks[i] = multiTask{A: i, B: 1000}
	}
	const poison = 25
	tasks[poison].A = -1
	got, err := MapWith[multiTask, int](ctx, p, tasks, MapOptions{ChunkSize: 10})
	var te *TaskError
	if !errors.As(err, &te) || te.Index != poison || !errors.Is(err, ErrWorkerDeaths) {
		t.Fatalf("err = %v (events %+v), want task %d failed by worker deaths", err, p.Events(), poison)
	}
	for i, r := range got {
		if i != poison && r != i+1000 {
			t.Errorf("result %d = %d, want %d", i, r, i+1000)
		}
	}
	if _, err := MapWith[multiTask, int](ctx, p, tasks[:poison], MapOptions{ChunkSize: 10}); err != nil {
		t.Errorf("the pool after the split: %v", err)
	}
}
