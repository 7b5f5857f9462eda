// Package shm holds memory that several processes map at once, and typed
// views over it that are safe to use from all of them.
//
// A [Region] is an anonymous memory file (memfd_create) sized with ftruncate,
// sealed so that nobody can shrink it under a mapping (which would turn later
// accesses into SIGBUS), and mapped shared with github.com/edsrzf/mmap-go.
// Nothing is created under /dev/shm or on disk: the memory lives as long as
// some process holds the descriptor or a mapping, so a crash leaks nothing.
//
// A child process receives the region's descriptor as an inherited file (see
// package procs, slot procs.FDShm) and maps it with [Open], which checks that
// the descriptor is a sealed memfd of the size the parent announced.
//
// The views, [Flag] and [Int64Array], access the shared words only through
// sync/atomic. That is a rule, not a convenience: the race detector sees the
// goroutines of one process, never the other processes mapping the same page,
// so a plain load or store of a shared word is a race no tool will report.
// The views work the same over memory that is not shared between processes
// (see [Local]), which lets one piece of code run on goroutines and on
// processes alike.
//
// # Typed arrays
//
// [MakeArray], [MakeValue] and [MakeBytes] lay a typed array (int64, uint64,
// float64 or uint32, see [Array]), a single [Value] or plain [Bytes] in
// memory behind a 32-byte header: magic, layout version, element type,
// element size and length. The matching Open functions check the header and
// return a *[MismatchError] that names what differs, so a child that maps
// the wrong thing, or at the wrong offset, is told so instead of reading
// garbage.
//
// # Locks between processes
//
// [Mutex], [RLock], [Cond], [Semaphore], [Event] and [Barrier] live in
// shared memory and are built on futex(2): FUTEX_WAIT sleeps while a
// 32-bit word holds a given value, FUTEX_WAKE wakes sleepers on a word.
// The shared, not the _PRIVATE, operations are used, since the sleepers
// are in different processes. The uncontended paths are one atomic
// operation and no system call. Every wait takes a context; a waiter
// sleeps in slices of at most 20 ms, so it notices a cancelled context or
// a passed deadline within a slice even if nobody wakes it.
//
// These are the notebook's lock family across processes: Lock is
// [Mutex]; RLock is [RLock], recursive, its holder a process plus a
// [Token] the caller keeps (goroutines have no identity of their own);
// Condition is [Cond], over a shared Mutex; Semaphore and Event are
// [Semaphore] and [Event]; and [Barrier].
//
// # When a process dies holding something
//
// A process is named by its pid and its start time (from /proc/PID/stat,
// less the boottime offset of the reader's time namespace, so that
// processes of different time namespaces agree on it) together, in one
// 64-bit word, so that a new process reusing a dead
// one's pid is never taken for it and nobody compares one process's pid
// with another's start time. A Mutex or RLock keeps its owner that way in
// its lock word. A waiter that finds the owner dead (exited, killed, or a
// zombie) takes the lock and gets an *[OwnerDeadError] (errors.Is(err,
// [ErrOwnerDead])), like a robust pthread mutex's EOWNERDEAD: it holds the
// lock and should repair what the lock guards before unlocking. There is
// no ENOTRECOVERABLE state. A robust Semaphore ([MakeRobustSemaphore])
// records the holder of each permit the same way, and a waiter takes over
// a dead holder's permit with the same error. A robust Barrier
// ([MakeRobustBarrier]) records its members; when one dies the barrier
// breaks with a *[PartyDeadError] naming it, for every party, until
// [Barrier.Reset]. A waiter looks at the owner once per wait slice, and
// watches a live owner's pidfd so that its death wakes the waiter at once;
// [MeasureRecovery] times how long that takes.
//
// Dead means certain: a process that cannot be seen is unknown, and a
// waiter keeps waiting. /proc mounted with hidepid= hides other users'
// processes; kill(pid, 0) still tells whether the pid exists. A lock used
// from more than one pid namespace holds pids that mean different things
// to its users, so it records the namespace of its users, and once they
// differ nobody takes it over.
//
// # Message rings
//
// A [Ring] is a bounded queue of messages (up to a fixed size each) laid
// in a region by [MakeRing] and checked by [OpenRing] (a corrupt or
// foreign header is a *[RingError]). Processes attach as a [RingProducer]
// or [RingConsumer]. In SPSC mode one producer and one consumer pass
// messages with no system call and one index store per batch; in MPMC
// mode any number do, each slot handed over by its own sequence word
// (Vyukov's bounded queue). Waiters spin briefly, then sleep on a futex,
// and a wake-up is made only when someone sleeps. A producer killed while
// writing never delivers a torn message, and what dead producers claimed
// or dead consumers took is counted lost ([RingStats]) instead of blocking
// the ring; the Ring doc lists the protocol's invariants. [BareRing] is the
// baseline the ring is measured against, and the exported roles
// ([RoleRingProducer] and others) let a lab run the ring between processes.
//
// The race detector knows nothing of memory mapped outside the Go heap: in
// a Region, the atomics and therefore these locks do not order goroutines'
// other memory accesses in its eyes, and it may report races between
// goroutines of one process that a Mutex in the region does order. Over
// [Local] memory it sees the order.
package shm
