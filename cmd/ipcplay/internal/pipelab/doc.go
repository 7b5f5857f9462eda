// Package pipelab is the pipes lab of ipcplay: it makes the classic
// pipe-buffer deadlocks happen for real between a parent and a child
// process, proves each one from the kernel's view with the stall detector
// of package pipes, ends it by killing the child, and then runs the fixed
// version of the same code. It also measures what a pipe holds
// ([Capacity]) and how fast one is between processes next to goroutines
// ([Bench]).
//
// [Command] is "ipcplay pipes" with its subcommands deadlock, capacity and
// bench (deadlockcmd.go, capacitycmd.go, benchcmd.go turn the runs into
// reports); [RegisterRoles] registers the two child roles, [ChildRole] and
// [BenchRole]. The lab sheet is docs/labs/pipes.md.
//
// Scenarios:
//
//   - [WaitThenRead]: the child writes N bytes to stdout; the parent waits
//     for it to exit before reading. Above the pipe's capacity the child
//     blocks in write(2) and never exits.
//   - [StdoutThenStderr]: the parent reads the child's stdout to EOF while
//     the child fills stderr. EOF on stdout comes only when the child exits,
//     and it cannot exit while stderr is full.
//   - [BothDirections]: the parent writes N bytes to the child's stdin
//     without reading the child's stdout, while the child echoes what it
//     reads. Once stdout is full the child stops reading, stdin fills, and
//     the parent blocks too.
//
// The child ([ChildRole]) publishes the bytes it has written (and, when it
// echoes, read) in a shared Int64Array, so the watchdog sees progress
// without touching the pipes. The fixes are drain goroutines
// ([pipes.StartDrain]) and, for both directions, a writer goroutine that
// feeds stdin while the drain empties stdout. [Threshold] is the byte at
// which each scenario starts to deadlock.
package pipelab
