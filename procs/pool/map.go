package pool

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// Map runs every task on p, chunkSize tasks per message, and returns the
// results in input order. If some tasks failed, their results are zero and
// the error joins their *TaskError values in input order (errors.As finds
// the first); any other error means the map did not complete.
func Map[T, R any](ctx context.Context, p *Pool, tasks []T, chunkSize int) ([]R, error) {
	out := make([]R, len(tasks))
	var failed []*TaskError
	err := MapUnordered(ctx, p, slices.Values(tasks), chunkSize, func(i int, r R, err error) error {
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
// message, and calls f in the calling goroutine with each task's index and
// result as soon as it arrives: exactly once per task, in no particular
// order. A task that failed comes with a *TaskError and a zero result.
//
// The sequence is read lazily: at most Config.InFlight chunks per worker,
// plus one waiting for room, are read ahead of the results (not counting
// chunks being re-sent after a death). If f returns an error the map stops
// and returns it; chunks in flight finish on their workers and are dropped.
// f must not call Close or start another map on p.
func MapUnordered[T, R any](ctx context.Context, p *Pool, tasks iter.Seq[T], chunkSize int, f func(i int, r R, err error) error) error {
	var (
		in   bytes.Reader
		dec  = msgpack.NewDecoder(&in)
		zero R
		r    = new(R) // one for the map: a variable per result escapes
	)
	onChunk := func(first, n int, data []byte, errs []error) error {
		in.Reset(data)
		dec.Reset(&in)
		for i := range n {
			*r = zero // so that the decoder reuses nothing f was given
			var err error
			if errs != nil && errs[i] != nil {
				err = errs[i]
				if derr := dec.Skip(); derr != nil {
					return fmt.Errorf("pool: results of tasks %d..%d: %w", first, first+n-1, derr)
				}
			} else if derr := decodeValue(dec, r); derr != nil {
				return fmt.Errorf("pool: decode result of task %d: %w", first+i, derr)
			}
			if err := f(first+i, *r, err); err != nil {
				return err
			}
		}
		return nil
	}
	onFail := func(te *TaskError) error {
		var r R
		return f(te.Index, r, te)
	}
	d, err := p.begin(ctx, chunkSize, onChunk, onFail)
	if err != nil {
		return err
	}
	defer d.end()
	for t := range tasks {
		d.offs = append(d.offs, d.buf.Len())
		if err := encodeValue(d.enc, t); err != nil {
			return fmt.Errorf("pool: encode task %d: %w", d.nextIndex+len(d.offs)-1, err)
		}
		if err := d.added(); err != nil {
			return err
		}
	}
	return d.finish()
}
