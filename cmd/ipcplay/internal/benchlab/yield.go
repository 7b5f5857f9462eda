package benchlab

import (
	"runtime"
	"time"
)

// yieldEvery is how often both ends of a process cell pass through the Go
// scheduler of their own accord, between two messages.
//
// The runtime's sysmon thread preempts a goroutine that has not been
// through the scheduler for 10 ms. A goroutine that lives in short blocking
// read(2) and write(2) calls never is, so every 10 ms or so sysmon signals
// its thread (SIGURG), takes its P away while it sits in read, wakes other
// threads to hand the P to, and, having found work to do, goes back to
// polling every 20 µs for the next few milliseconds. Counted on a 2-CPU VM
// (pipe, 4 bytes, 100,000 round trips), each process of the pair spent
// 0.06-0.11 nanosleep and up to 0.12 futex calls and 1.5-2.5 µs of another
// thread's CPU per round trip that way; perf bench sched pipe's processes
// spend none. A locked goroutine's own yield costs a hand-off to another
// thread and back (about three context switches), so it is done 250 times a
// second rather than on every message, and between round trips, outside
// the timed span.
const yieldEvery = 4 * time.Millisecond

// A yielder calls runtime.Gosched when yieldEvery has passed since its last
// call. The zero value yields at its first chance.
type yielder struct{ last time.Time }

// at is called between two messages with the current time.
func (y *yielder) at(now time.Time) {
	if now.Sub(y.last) >= yieldEvery {
		runtime.Gosched()
		y.last = time.Now()
	}
}
