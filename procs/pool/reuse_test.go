package pool

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestResultsOutliveTheirChunk: the reader receives each answer into the
// buffer of one the map is done with, so a result handed to the caller must
// not point into it. Results of the slow path (msgpack.RawMessage, decoded
// by msgpack's Decoder) and of the fast one (strings) are kept to the end
// of maps of many small chunks, and must still hold their own values.
func TestResultsOutliveTheirChunk(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleEcho, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	tasks := make([]int, 3000)
	for i := range tasks {
		tasks[i] = 1000 + i // never 0 (nil) or negative (an error)
	}
	raws, err := Map[int, msgpack.RawMessage](ctx, p, tasks, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range raws {
		var x int
		if err := msgpack.Unmarshal(raw, &x); err != nil || x != tasks[i] {
			t.Fatalf("result %d: % x (%d, %v), want %d", i, raw, x, err, tasks[i])
		}
	}

	strs := make([]string, 3000)
	for i := range strs {
		strs[i] = "task " + itoa(i)
	}
	p2, err := New(ctx, Config{Role: roleBig, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	got, err := Map[string, string](ctx, p2, strs, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		if s != strs[i] {
			t.Fatalf("result %d: %q, want %q", i, s, strs[i])
		}
	}
}

// TestReuseKeepsNoLargeAnswer: an answer handed back for reuse keeps its
// Results array for the worker's reader, up to three per worker (InFlight
// spares and the one being received into) for the pool's life. An answer
// of one large chunk (up to the 16 MiB frame) was kept too: a pool that
// once returned large results held tens of MiB per worker until Close.
func TestReuseKeepsNoLargeAnswer(t *testing.T) {
	w := &worker{spare: make(chan *resultMsg, 2)}
	w.reuse(&resultMsg{Results: make([]byte, 8<<20)})
	if len(w.spare) != 0 {
		t.Errorf("an answer of 8 MiB kept for reuse")
	}
	w.reuse(&resultMsg{Results: make([]byte, 64<<10)})
	if len(w.spare) != 1 {
		t.Errorf("an answer of 64 KiB not kept for reuse")
	}
}
