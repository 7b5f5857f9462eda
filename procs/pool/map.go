package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"
)

// MapOptions tunes one map. The zero value asks for the defaults.
type MapOptions struct {
	// ChunkSize is how many tasks travel in one message. Zero lets the
	// pool choose, and adapt as results come back: see the package doc.
	ChunkSize int
	// TaskTimeout bounds how long one task may run on a worker. A task
	// still running after it fails with a *TaskError matching
	// ErrTaskTimeout; its worker is killed and replaced, and the rest of
	// the map completes. Zero means no limit.
	TaskTimeout time.Duration
	// Len is the number of tasks, if known, for MapUnorderedWith; it only
	// guides the chosen chunk size. MapWith sets it from the slice.
	Len int
}

// Map runs every task on p, chunkSize tasks per message (0 lets the pool
// choose), and returns the results in input order. It is MapWith with
// only a chunk size.
func Map[T, R any](ctx context.Context, p *Pool, tasks []T, chunkSize int) ([]R, error) {
	return MapWith[T, R](ctx, p, tasks, MapOptions{ChunkSize: chunkSize})
}

// MapWith runs every task on p as o says and returns the results in input
// order. If some tasks failed, their results are zero and the error joins
// their *TaskError values in input order (errors.As finds the first); any
// other error means the map did not complete.
func MapWith[T, R any](ctx context.Context, p *Pool, tasks []T, o MapOptions) ([]R, error) {
	out := make([]R, len(tasks))
	var failed []*TaskError
	o.Len = len(tasks)
	err := MapUnorderedWith(ctx, p, slices.Values(tasks), o, func(i int, r R, err error) error {
		if err != nil {
			var te *TaskError
			if !errors.As(err, &te) {
				return err
			}
			failed = append(failed, te)
			return nil
		}
		out[i] = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(failed) > 0 {
		slices.SortFunc(failed, func(a, b *TaskError) int { return cmp.Compare(a.Index, b.Index) })
		errs := make([]error, len(failed))
		for i, te := range failed {
			errs[i] = te
		}
		return out, errors.Join(errs...)
	}
	return out, nil
}

// MapUnordered runs every task of the sequence on p, chunkSize tasks per
// message (0 lets the pool choose), and calls f as MapUnorderedWith does.
func MapUnordered[T, R any](ctx context.Context, p *Pool, tasks iter.Seq[T], chunkSize int, f func(i int, r R, err error) error) error {
	return MapUnorderedWith(ctx, p, tasks, MapOptions{ChunkSize: chunkSize}, f)
}

// MapUnorderedWith runs every task of the sequence on p as o says, and
// calls f in the calling goroutine with each task's index and result as
// soon as it arrives: exactly once per task, in no particular order. A task
// that failed comes with a *TaskError and a zero result.
//
// The sequence is read lazily: at most Config.InFlight chunks per worker,
// plus one waiting for room, are read ahead of the results (not counting
// chunks being re-sent after a death). If f returns an error the map stops
// and returns it; chunks in flight finish on their workers and are dropped.
// f must not call Close or start another map on p.
func MapUnorderedWith[T, R any](ctx context.Context, p *Pool, tasks iter.Seq[T], o MapOptions, f func(i int, r R, err error) error) error {
	var (
		rd   = newReader[R]()
		zero R
		r    = new(R) // one for the map: a variable per result escapes
	)
	onChunk := func(first, n int, data []byte, errs []error) error {
		if err := rd.reset(data); err != nil {
			return fmt.Errorf("pool: results of tasks %d..%d: %w", first, first+n-1, err)
		}
		for i := range n {
			if errs != nil && errs[i] != nil {
				if derr := rd.skip(); derr != nil {
					return fmt.Errorf("pool: results of tasks %d..%d: %w", first, first+n-1, derr)
				}
				if err := f(first+i, zero, errs[i]); err != nil {
					return err
				}
				continue
			}
			// next leaves in r nothing of what f was given before.
			if derr := rd.next(r); derr != nil {
				return fmt.Errorf("pool: decode result of task %d: %w", first+i, derr)
			}
			if err := f(first+i, *r, nil); err != nil {
				return err
			}
		}
		return nil
	}
	onFail := func(te *TaskError) error {
		var r R
		return f(te.Index, r, te)
	}
	d, err := p.begin(ctx, o, onChunk, onFail)
	if err != nil {
		return err
	}
	defer d.end()
	w := newWriter[T](&d.buf, d.enc)
	d.keepOffs = !w.fast
	for t := range tasks {
		d.adding()
		if err := w.put(t); err != nil {
			return fmt.Errorf("pool: encode task %d: %w", d.nextIndex+d.count-1, err)
		}
		if err := d.tooLarge(); err != nil {
			return err
		}
		if err := d.added(); err != nil {
			return err
		}
	}
	return d.finish()
}
