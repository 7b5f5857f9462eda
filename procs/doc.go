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
// [Cmd.Wait] reports a failed child as a *[ChildError], which holds the
// role, pid, exit code or signal, and the tail of the child's stderr.
package procs
