package pool

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"ipcplay/procs"
)

// roleSplit echoes strings, and exits with status 7 on one that starts
// with "poison".
const roleSplit = "pool-test-split"

func init() {
	procs.Register(roleSplit, WorkerMain(Typed(func(ctx context.Context, s string) (string, error) {
		if strings.HasPrefix(s, "poison") {
			os.Exit(7)
		}
		return s, nil
	})))
}

// TestDeathSplitsAtEveryPosition: a death splits the chunk it was working
// on by walking its bytes. Chunks of strings of every msgpack header
// (fixstr, str8, str16, str32 sizes) hold a poison task at each position
// in turn: only the poison tasks may fail, every other result must come
// back once and whole.
func TestDeathSplitsAtEveryPosition(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleSplit, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	sizes := []int{0, 1, 31, 32, 255, 256, 65535, 65536}
	var tasks []string
	var poisons []int
	for k := range sizes {
		for i, n := range sizes {
			s := strings.Repeat(string(rune('a'+i)), n)
			if i == k {
				s = "poison" + s
				poisons = append(poisons, len(tasks))
			}
			tasks = append(tasks, s)
		}
	}
	got, err := MapWith[string, string](ctx, p, tasks, MapOptions{ChunkSize: len(sizes)})
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("err = %v, want the poison tasks' errors", err)
	}
	var failed []int
	for _, e := range joined.Unwrap() {
		var te *TaskError
		if !errors.As(e, &te) || !errors.Is(e, ErrWorkerDeaths) {
			t.Fatalf("err %v, want only worker deaths", e)
		}
		failed = append(failed, te.Index)
	}
	if !slices.Equal(failed, poisons) {
		t.Errorf("failed %v, want %v", failed, poisons)
	}
	for i, r := range got {
		if !slices.Contains(poisons, i) && r != tasks[i] {
			t.Errorf("result %d: %d bytes, want %d", i, len(r), len(tasks[i]))
		}
	}
}
