package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// chunkMsg is what the parent sends a worker: N tasks, encoded back to back
// in Tasks, with their chunk id. Encoding a chunk's tasks as one byte string
// lets both sides encode and decode them with one reused encoder or decoder,
// without a message value per task. Timeout, in nanoseconds, bounds each
// task's run; zero means none.
type chunkMsg struct {
	ID      uint64 `msgpack:"id"`
	N       int    `msgpack:"n"`
	Tasks   []byte `msgpack:"tasks"`
	Timeout int64  `msgpack:"timeout,omitempty"`
}

// helloID is the id of the resultMsg a worker sends once, when it starts
// serving; chunk ids start at 1.
const helloID = 0

// resultMsg is a worker's answer to one chunkMsg: the N results back to
// back in Results, msgpack nil for a task that failed, whose error message
// is then Errs[i]. Errs is omitted when every task succeeded.
//
// A worker whose task runs past the chunk's Timeout sends instead a
// resultMsg with the chunk's ID and Hung set to 1 + the task's index in the
// chunk, then exits with status ExitHung.
type resultMsg struct {
	ID      uint64   `msgpack:"id"`
	N       int      `msgpack:"n"`
	Results []byte   `msgpack:"results"`
	Errs    []string `msgpack:"errs,omitempty"`
	Hung    int      `msgpack:"hung,omitempty"`
}

// A Handler runs the tasks of a worker. Make one with Typed or Raw. A
// Handler keeps decoding state from chunk to chunk: give each Serve its
// own.
type Handler interface {
	// run decodes n tasks from data, runs them in order, and appends one
	// encoded result per task to out, through enc or directly (nil for a
	// task that failed, with its message in errs). An error means the
	// chunk itself could not be handled. When wd is not nil, run calls
	// wd.started(i) before task i.
	run(ctx context.Context, data []byte, n int, out *bytes.Buffer, enc *msgpack.Encoder, wd *watchdog) (errs []string, err error)
}

// setErr records msg as task i's error in errs, which grows to n entries
// the first time.
func setErr(errs []string, n, i int, msg string) []string {
	if errs == nil {
		errs = make([]string, n)
	}
	errs[i] = msg
	return errs
}

type typed[T, R any] struct {
	f  func(ctx context.Context, task T) (R, error)
	rd *reader[T]
}

// Typed makes a Handler out of a function on decoded values: each task is
// decoded into a T and its result encoded from an R with msgpack. An error
// the function returns becomes the task's *TaskError in the parent. Each
// result is encoded before the next task runs, so f may return memory it
// reuses from one task to the next.
func Typed[T, R any](f func(ctx context.Context, task T) (R, error)) Handler {
	return &typed[T, R]{f: f, rd: newReader[T]()}
}

func (h *typed[T, R]) run(ctx context.Context, data []byte, n int, out *bytes.Buffer, enc *msgpack.Encoder, wd *watchdog) ([]string, error) {
	var (
		errs []string
		t    = new(T) // one for the chunk: a variable per task escapes
		w    = newWriter[R](out, enc)
	)
	if err := h.rd.reset(data); err != nil {
		return nil, fmt.Errorf("decode tasks: %w", err)
	}
	for i := range n {
		if err := h.rd.next(t); err != nil { // reuses nothing decoded before
			return nil, fmt.Errorf("decode task %d of %d: %w", i, n, err)
		}
		if wd != nil {
			wd.started(i)
		}
		r, err := h.f(ctx, *t)
		if err != nil {
			errs = setErr(errs, n, i, err.Error())
			if err := w.putNil(); err != nil {
				return nil, err
			}
			continue
		}
		start := out.Len()
		if err := w.put(r); err != nil {
			return nil, fmt.Errorf("encode result of task %d of %d: %w", i, n, err)
		}
		if size := out.Len() - start; size > maxValueBytes {
			// It could not be sent: the task fails, not the worker.
			out.Truncate(start)
			errs = setErr(errs, n, i, fmt.Sprintf("result %v: encoded in %d bytes, over %d", ErrTooLarge, size, maxValueBytes))
			if err := w.putNil(); err != nil {
				return nil, err
			}
		}
	}
	return errs, nil
}

type raw func(ctx context.Context, task msgpack.RawMessage) (msgpack.RawMessage, error)

// Raw makes a Handler out of a function on encoded values: it receives each
// task as the parent encoded it and returns one encoded value (nil or empty
// for msgpack nil).
func Raw(f func(ctx context.Context, task msgpack.RawMessage) (msgpack.RawMessage, error)) Handler {
	return raw(f)
}

func (f raw) run(ctx context.Context, data []byte, n int, out *bytes.Buffer, enc *msgpack.Encoder, wd *watchdog) ([]string, error) {
	var errs []string
	if err := checkDepth(data); err != nil { // DecodeRaw recurses too
		return nil, fmt.Errorf("decode tasks: %w", err)
	}
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	for i := range n {
		t, err := dec.DecodeRaw()
		if err != nil {
			return nil, fmt.Errorf("decode task %d of %d: %w", i, n, err)
		}
		if wd != nil {
			wd.started(i)
		}
		r, err := f(ctx, t)
		if err != nil {
			errs = setErr(errs, n, i, err.Error())
			r = nil
		}
		if len(r) > maxValueBytes {
			// It could not be sent: the task fails, not the worker.
			errs = setErr(errs, n, i, fmt.Sprintf("result %v: encoded in %d bytes, over %d", ErrTooLarge, len(r), maxValueBytes))
			r = nil
		}
		if len(r) == 0 {
			err = enc.EncodeNil()
		} else {
			err = enc.Encode(r)
		}
		if err != nil {
			return nil, err
		}
	}
	return errs, nil
}

// Serve is the worker's side of the pool: it receives chunks on conn, runs
// h on their tasks in order, and answers each chunk with its results. It
// returns nil when the parent closes the connection (which is how a pool
// shuts down), and an error if the connection fails, a chunk cannot be
// decoded, or ctx is done.
//
// A chunk sent with a task timeout is watched: if one of its tasks runs
// longer, Serve tells the parent which one and exits the process with
// status ExitHung, since a goroutine stuck in a task cannot be stopped.
func Serve(ctx context.Context, conn *ipc.Conn, h Handler) error {
	var (
		req chunkMsg
		res resultMsg
		out bytes.Buffer
		enc = msgpack.NewEncoder(&out)
	)
	// The hello tells the parent this worker is up: a worker that dies
	// before it cannot have touched a chunk.
	if err := conn.Send(&resultMsg{ID: helloID}); err != nil {
		return fmt.Errorf("pool worker: send hello: %w", err)
	}
	var wd *watchdog // started by the first chunk with a timeout
	defer func() {
		if wd != nil {
			wd.stop()
		}
	}()
	for {
		if err := conn.Recv(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("pool worker: receive chunk: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pool worker: %w", context.Cause(ctx))
		}
		out.Reset()
		var watch *watchdog
		if req.Timeout > 0 {
			if wd == nil {
				wd = startWatchdog(conn)
			}
			watch = wd
			wd.begin(req.ID, time.Duration(req.Timeout))
		}
		errs, err := h.run(ctx, req.Tasks, req.N, &out, enc, watch)
		if watch != nil {
			watch.end()
		}
		if err != nil {
			return fmt.Errorf("pool worker: chunk %d: %w", req.ID, err)
		}
		res.ID, res.N, res.Results, res.Errs = req.ID, req.N, out.Bytes(), errs
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
