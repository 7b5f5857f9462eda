package pool

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// chunkMsg is what the parent sends a worker: tasks with their chunk id.
type chunkMsg struct {
	ID    uint64               `msgpack:"id"`
	Tasks []msgpack.RawMessage `msgpack:"tasks"`
}

// resultMsg is a worker's answer to one chunkMsg: Results[i] is the result
// of Tasks[i], or msgpack nil if Errs[i] is not empty. Errs is omitted when
// every task succeeded.
type resultMsg struct {
	ID      uint64               `msgpack:"id"`
	Results []msgpack.RawMessage `msgpack:"results"`
	Errs    []string             `msgpack:"errs,omitempty"`
}

// msgpackNil is the encoding of a nil value, sent as the result of a task
// that failed.
var msgpackNil = msgpack.RawMessage{0xc0}

// A Handler runs one task in a worker. It receives the task as encoded by
// the parent and returns the encoded result, or an error that the parent
// reports as the task's *TaskError (a *HandlerError).
type Handler func(ctx context.Context, task msgpack.RawMessage) (msgpack.RawMessage, error)

// Typed makes a Handler out of a function on decoded values: the task is
// decoded into a T and the result encoded from an R with msgpack.
func Typed[T, R any](f func(ctx context.Context, task T) (R, error)) Handler {
	return func(ctx context.Context, raw msgpack.RawMessage) (msgpack.RawMessage, error) {
		var t T
		if err := msgpack.Unmarshal(raw, &t); err != nil {
			return nil, fmt.Errorf("decode task: %w", err)
		}
		r, err := f(ctx, t)
		if err != nil {
			return nil, err
		}
		b, err := msgpack.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode result: %w", err)
		}
		return b, nil
	}
}

// Serve is the worker's side of the pool: it receives chunks on conn, runs h
// on each task in order, and answers each chunk with its results. It returns
// nil when the parent closes the connection (which is how a pool shuts down),
// and an error if the connection fails or ctx is done.
func Serve(ctx context.Context, conn *ipc.Conn, h Handler) error {
	var (
		req chunkMsg
		res resultMsg
	)
	for {
		req.Tasks = nil
		if err := conn.Recv(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("pool worker: receive chunk: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pool worker: %w", context.Cause(ctx))
		}
		res.ID = req.ID
		res.Results = res.Results[:0]
		res.Errs = res.Errs[:0]
		failed := false
		for i, t := range req.Tasks {
			r, err := h(ctx, t)
			if err != nil {
				if !failed {
					// Errs is parallel to Results once any task fails.
					for range i {
						res.Errs = append(res.Errs, "")
					}
					failed = true
				}
				res.Results = append(res.Results, msgpackNil)
				res.Errs = append(res.Errs, err.Error())
				continue
			}
			if len(r) == 0 {
				r = msgpackNil
			}
			res.Results = append(res.Results, r)
			if failed {
				res.Errs = append(res.Errs, "")
			}
		}
		if err := conn.Send(&res); err != nil {
			return fmt.Errorf("pool worker: send results of chunk %d: %w", req.ID, err)
		}
	}
}

// WorkerMain returns the entry point of a worker role that serves h on the
// socket the pool hands it as procs.FDControl. Register it under the role
// name given in Config.Role:
//
//	procs.Register("factor-worker", pool.WorkerMain(pool.Typed(factorize)))
func WorkerMain(h Handler) procs.Func {
	return func(ctx context.Context, args []string) error {
		f, err := procs.ChildFile(procs.FDControl, procs.Socket, "pool-conn")
		if err != nil {
			return fmt.Errorf("pool worker: %w", err)
		}
		conn, err := ipc.FileConn(f)
		if err != nil {
			return fmt.Errorf("pool worker: %w", err)
		}
		defer conn.Close()
		return Serve(ctx, conn, h)
	}
}
