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
// [Mutex], [Semaphore], [Event] and [Barrier] live in shared memory and are
// built on futex(2): FUTEX_WAIT sleeps while a 32-bit word holds a given
// value, FUTEX_WAKE wakes sleepers on a word. The shared, not the _PRIVATE,
// operations are used, since the sleepers are in different processes. The
// uncontended paths are one atomic operation and no system call. Every wait
// takes a context; a waiter sleeps in slices of at most 20 ms, so it notices
// a cancelled context, a passed deadline or a dead lock owner within a
// slice even if nobody wakes it.
//
// A Mutex records its owner's pid, and its start time from /proc/PID/stat
// so that a new process reusing the pid is not taken for the owner. A
// waiter that finds the owner gone takes the lock and gets an
// *[OwnerDeadError] (errors.Is(err, [ErrOwnerDead])), like a robust pthread
// mutex's EOWNERDEAD: it holds the lock and should repair what the lock
// guards before unlocking. There is no ENOTRECOVERABLE state.
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
