// Package pipes measures and watches Linux pipes: how much a pipe holds,
// how to drain one without ever blocking its writer, and how to tell, from
// the kernel's own view, that a process is stuck writing to a full one.
//
// # Capacity
//
// A pipe holds a fixed number of bytes (65536 by default on Linux, but never
// assume it): [Capacity] asks the kernel (F_GETPIPE_SZ), [MeasureCapacity]
// fills a fresh non-blocking pipe until write fails with EAGAIN and counts
// the bytes, and [Resize] changes the size (F_SETPIPE_SZ) within
// /proc/sys/fs/pipe-max-size, failing with a *[SizeError] above it.
// [Buffered] reports how many bytes wait in a pipe to be read (FIONREAD).
//
// # Drains
//
// A writer blocks once the pipe is full until its reader makes room. A
// parent that waits for a child before reading the child's output, or that
// reads one of the child's pipes to EOF while the child fills another,
// therefore waits forever: the child is waiting for it. [StartDrain] is the
// fix: a goroutine reads the pipe to EOF as the data comes, keeping a
// bounded amount of it, and its owner collects the result with
// [Drain.Wait]. Like the copying goroutines of os/exec, a Drain never
// closes its reader; the owner closes the read end after Wait, and must
// close its own copy of the write end after starting the child, or the
// drain never sees EOF.
//
// # Stalls
//
// [Observe] watches a process for a while and says whether it is blocked
// writing to a full pipe. It reads /proc/PID/task/*/stat (the state of each
// thread), /proc/PID/task/*/wchan (where in the kernel it sleeps) and
// /proc/PID/task/*/syscall (which system call it is in, readable only with
// ptrace access: when it is not, the [Evidence] says so), the pipe's fill
// level, and a progress counter the caller supplies (the lab's child
// publishes the bytes it has written in shared memory). It says "blocked
// writing to a full pipe" only when all of it agrees, and otherwise reports
// what it saw.
//
// Threads matter: a Go process has several, and the one blocked in write(2)
// need not be the thread group leader whose state /proc/PID/stat shows, so
// the detector looks at every thread and reports the one in a pipe write.
package pipes
