package pool

import (
	"context"
	"errors"
	"iter"
)

// Item is one task's outcome from Unordered: its index in the input, its
// result, and its *TaskError if it failed (then Value is zero).
type Item[R any] struct {
	Index int
	Value R
	Err   error
}

// errStopped ends a map whose consumer stopped ranging over Unordered.
var errStopped = errors.New("pool: the consumer stopped ranging")

// Unordered is MapUnordered as a range-over-func iterator: ranging over it
// runs the map, and the loop body gets each task's Item as soon as it
// arrives, exactly once per task, in no particular order, with a nil error.
// If the map as a whole fails (its context ends, the pool closes, workers
// cannot start), the last pair has Index -1 and that error.
//
// It is a push iterator: the loop body runs in the ranging goroutine, which
// owns the map, and no goroutine is left behind. Breaking out of the loop
// ends the map early as a MapUnordered callback error does: chunks in
// flight finish on their workers and are dropped, and p stays usable. The
// loop body must not call Close or start another map on p.
func Unordered[T, R any](ctx context.Context, p *Pool, tasks iter.Seq[T], chunkSize int) iter.Seq2[Item[R], error] {
	return func(yield func(Item[R], error) bool) {
		err := MapUnordered(ctx, p, tasks, chunkSize, func(i int, r R, err error) error {
			if !yield(Item[R]{Index: i, Value: r, Err: err}, nil) {
				return errStopped
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopped) {
			yield(Item[R]{Index: -1}, err)
		}
	}
}
