package chaos

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"ipcplay/procs"
)

// An Outcome is what one iteration did and what its checks found.
type Outcome struct {
	Iteration
	Fired   []int  // per kill, the pid it was sent to (0: not sent)
	Died    []bool // per kill, whether its victim died of it
	Made    int    // kills whose victim died of the SIGKILL
	Results int64  // results checked: each delivered exactly once
	// Lost counts the results reported lost, each with the dead process
	// that held it (LostBy): a pool task that failed after MaxRetries
	// deaths, values a dead queue consumer had fetched ahead, lock rounds
	// a dead shm holder was inside.
	Lost   int64
	LostBy []int
	// Stranded is the queue hub's count of values handed to endpoints that
	// died; Takeovers the shm locks taken over from a dead holder; Deaths
	// the pool's recorded worker deaths.
	Stranded, Takeovers, Deaths int
	Took                        time.Duration
	Hung                        bool  // the iteration's deadline passed
	Err                         error // a failed check, or why it stopped
}

func newOutcome(it Iteration) Outcome {
	return Outcome{Iteration: it, Fired: make([]int, len(it.Kills)), Died: make([]bool, len(it.Kills))}
}

// died records that kill i's victim died of it.
func (o *Outcome) died(i int) {
	if !o.Died[i] {
		o.Died[i] = true
		o.Made++
	}
}

// failf records a failed check; the first one wins.
func (o *Outcome) failf(format string, args ...any) {
	if o.Err == nil {
		o.Err = fmt.Errorf(format, args...)
	}
}

// ended records why the iteration's work stopped: a deadline that passed
// is a hang, anything else a failure.
func (o *Outcome) ended(ctx context.Context, err error) {
	if err == nil {
		return
	}
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		o.Hung = true
	}
	o.failf("%w", err)
}

// killedBySIGKILL reports whether c ended by SIGKILL.
func killedBySIGKILL(c *procs.Cmd) bool {
	ps := c.ProcessState()
	if ps == nil {
		return false
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// addLostBy adds pid to o.LostBy once.
func (o *Outcome) addLostBy(pid int) {
	for _, p := range o.LostBy {
		if p == pid {
			return
		}
	}
	o.LostBy = append(o.LostBy, pid)
}
