package pool

import (
	"context"
	"errors"
	"testing"
)

func TestUnorderedIterator(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2)
	const n = 3000
	seen := make([]int, n)
	for it, err := range Unordered[int, int](ctx, p, ints2seq(n), 7) {
		if err != nil {
			t.Fatal(err)
		}
		if it.Err != nil || it.Value != it.Index*it.Index {
			t.Fatalf("item %+v", it)
		}
		seen[it.Index]++
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("task %d delivered %d times", i, c)
		}
	}

	// Breaking out ends the map early; the pool stays usable.
	got := 0
	for _, err := range Unordered[int, int](ctx, p, ints2seq(n), 5) {
		if err != nil {
			t.Fatal(err)
		}
		if got++; got == 10 {
			break
		}
	}
	rs, err := Map[int, int](ctx, p, ints(100), 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r != i*i {
			t.Fatalf("after break: result %d = %d", i, r)
		}
	}
}

func TestUnorderedIteratorCancel(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2)
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	endless := func(yield func(int) bool) {
		for i := 0; ; i++ {
			if !yield(i % 1000) {
				return
			}
		}
	}
	var last error
	count := 0
	// No bound on how soon: a cancel that did not stop the endless map
	// would hold the test until testCtx's deadline.
	for it, err := range Unordered[int, int](mctx, p, endless, 10) {
		if err != nil {
			if it.Index != -1 {
				t.Errorf("map error with index %d", it.Index)
			}
			last = err
			continue
		}
		if count++; count == 2000 {
			cancel()
		}
	}
	if !errors.Is(last, context.Canceled) {
		t.Fatalf("last error = %v, want context.Canceled", last)
	}
	noChildren(t)
}
