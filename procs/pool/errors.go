package pool

import (
	"errors"
	"fmt"
	"time"
)

// ErrClosed is returned by a map on a Pool that was closed, or whose workers
// were stopped by a cancelled map.
var ErrClosed = errors.New("pool: closed")

// ErrWorkerDeaths is matched (with errors.Is) by the *TaskError of a task
// that killed its worker Config.MaxRetries times.
var ErrWorkerDeaths = errors.New("task killed its worker too many times")

// ErrWorkersFailing is returned when workers keep dying before they start
// serving (a role that fails at once, for example), so that starting more
// would loop forever. The map stops and the pool is closed.
var ErrWorkersFailing = errors.New("pool: workers die before they start serving")

// ErrTaskTimeout is matched (with errors.Is) by the *TaskError of a task
// that ran longer than MapOptions.TaskTimeout.
var ErrTaskTimeout = errors.New("task timed out")

// ErrTooLarge is matched (with errors.Is) by the *TaskError of a task
// whose encoding is too large for one message (15 MiB). A result that
// large fails its task with a *HandlerError that says so.
var ErrTooLarge = errors.New("too large for a message")

// TimeoutError is the Err of a task that ran longer than its timeout. Its
// worker was killed and replaced.
type TimeoutError struct {
	Limit time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%v after %v: its worker was killed", ErrTaskTimeout, e.Limit)
}

func (e *TimeoutError) Is(target error) bool { return target == ErrTaskTimeout }

// TaskError reports a task that failed: its handler returned an error (Err
// is a *HandlerError), it ran past the map's TaskTimeout (Err is a
// *TimeoutError, matching ErrTaskTimeout), or it was in flight on a worker
// that died Config.MaxRetries times (Err matches ErrWorkerDeaths and wraps
// the last worker's *procs.ChildError).
type TaskError struct {
	Index  int   // the task's position in the input, from 0
	Deaths int   // how many workers died while running it
	Err    error // why it failed
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("pool: task %d: %v", e.Index, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// HandlerError is an error a task's Handler returned in the worker, carried
// to the parent as its message.
type HandlerError struct {
	Msg string
}

func (e *HandlerError) Error() string { return e.Msg }
