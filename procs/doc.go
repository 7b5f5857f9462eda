// Package procs runs the current binary again as named child processes.
//
// Go cannot fork without exec, so a program that wants real worker processes
// starts itself: the child is the same executable (/proc/self/exe), and its
// argv[0] is the name of a role, an entry point the program registered with
// [Register]. The first thing main (and every TestMain) does is call [Init],
// which runs the role and exits when this process was started as a child, and
// returns at once otherwise.
//
//	func main() {
//		procs.Register("primes-worker", primes.WorkerMain)
//		procs.Init()
//		...
//	}
//
// [Command] prepares a child: its role, its arguments, the extra files it
// inherits (ExtraFiles entry i becomes fd 3+i in the child, see [FDControl] and
// its siblings), and where its output goes. Every child is started the same
// way:
//
//   - its context's cancellation sends SIGTERM, and SIGKILL follows after
//     WaitDelay if the child is still running;
//   - it is killed with SIGKILL if the parent dies (Pdeathsig);
//   - it runs in its own process group, so the terminal's Ctrl-C reaches only
//     the parent, which decides the order of shutdown.
//
// Pdeathsig fires when the parent *thread* that started the child exits, not
// the parent process. The Go runtime only ends a thread when a goroutine locked
// to it with runtime.LockOSThread returns without unlocking, so never start a
// child from such a goroutine: its children would be killed when it returns.
//
// [Cmd.SetFile] puts a file in its named slot and hands it over: the
// parent's copy is closed right after Start, so that the other end of a pipe
// or socket sees EOF when the child exits. A role exits with a status of its
// choosing by returning [ExitCode] (alone, or wrapped in its error) instead of
// calling os.Exit, which would skip its deferred calls.
//
// [Cmd.Wait] reports a failed child as a *[ChildError], which holds the
// role, pid, exit code or signal, and the tail of the child's stderr.
//
// [StartGroup] starts children that stand or fall together: the first
// failure cancels the group's context with that failure as its cause, which
// stops the others, and [Group.Wait] reports the children's own failures
// before those of the children it stopped.
//
// # Start-up
//
// [BareRole] is a role every binary has without registering it: it returns
// at once. [MeasureSpawn] times it: the floor any child of the binary pays
// (fork, exec, the dynamic loader if the binary has one, the Go runtime,
// every package's initialization) before its role runs. A lab prints it
// beside its own children's spawn-to-ready times, measured in the same run.
// Keep package-level initialization light in every package a binary links:
// each child pays for all of it, whatever its role (GODEBUG=inittrace=1
// lists it).
package procs
