// Package pool runs tasks on a pool of worker processes that survives the
// death of any of them.
//
// A Pool starts Config.Workers children with procs.Command, each running a
// role the program registered (usually with WorkerMain) and each talking to
// the parent over its own socket pair from ipc.Pair, inherited as
// procs.FDControl. The parent sends chunks of msgpack-encoded tasks; the
// worker answers each chunk with the results, in order, and the task errors.
// A chunk's tasks travel as one byte string of msgpack values back to back,
// encoded and decoded with one reused encoder or decoder per side, so a task
// costs no message of its own; scalar types, slices of ints and strings,
// and types implementing msgpack.CustomEncoder/CustomDecoder skip msgpack's
// reflection.
//
// Map returns the results in input order; MapUnordered hands each result to a
// callback as soon as it arrives, and Unordered is the same as an iterator
// (for it, err := range pool.Unordered[T, R](ctx, p, tasks, chunk)).
// MapWith and MapUnorderedWith take MapOptions: the chunk size, a per-task
// timeout, the input's length. All read their input lazily: at most
// Config.InFlight chunks are outstanding per worker, plus one waiting for
// room, so a huge or endless input costs bounded memory.
//
// # Chunk size
//
// A chunk size of zero lets the pool choose. The first chunk of each
// worker holds one task, and each next round of chunks twice as many,
// until the first answer comes back;
// from then on a chunk holds what a worker runs in about 10 ms, from a
// running average of the time workers took per task (weighted by tasks),
// so that a chunk's messages and wake-ups cost 1-2% of its work whatever
// the tasks are, while the last chunks still end close together. When the
// input's length is known (Map, MapWith, or MapOptions.Len), a chunk also
// holds at most length / (8 x workers) tasks, so that every worker gets
// several and the last ones end close together. A chunk is also sent once
// its encoded tasks reach 1 MiB.
//
// # Who waits for whom
//
// Each worker has a reader goroutine, which receives its results and hands
// them to the map through an inbox that never refuses one, and a writer
// goroutine, which sends it the chunks the map queues for it. The map's own
// goroutine never blocks on a worker: it queues a chunk only to a worker
// holding fewer than Config.InFlight, in a queue of that capacity, and it
// waits only for the inbox, its context or a timeout. The inbox is bounded by
// the same credits: a worker answers only the chunks it holds. So no cycle of
// waits exists however large tasks and results are: a worker blocked
// writing a result is always being read.
//
// # Task timeouts
//
// With MapOptions.TaskTimeout set, each worker watches its own tasks: one
// still running after the timeout is reported to the parent by index, and
// the worker exits with status ExitHung, since a goroutine stuck in a task
// cannot be stopped. The task fails with a *TaskError matching
// ErrTaskTimeout, the other tasks of its chunk are sent again (blamed for
// nothing), the worker is replaced, and the map goes on. As a backstop for a
// worker that cannot report (stopped, or stuck outside Go), the parent kills
// a serving worker that holds a chunk of n tasks for (n+1) timeouts plus 5
// seconds; that death is blamed on the chunk as any death is. A worker
// holding chunks of such a map that has not said hello 30 s after its
// spawn is killed too, as a failed start: nothing is blamed.
//
// # Start-up
//
// New returns once the workers are started, not serving. Ready waits until
// every one has said hello, so that a map started next measures the steady
// state only; Startups gives each worker's time from spawn to hello, to set
// beside procs.MeasureSpawn.
//
// # Dying workers
//
// A worker that dies (SIGKILL, a crash, an exit) is noticed as soon as its
// socket reports EOF: the parent reaps it, records an Event (pid, exit code or
// signal, the tasks re-sent), starts a replacement and sends the chunks that
// were in flight on it again. Each result is delivered exactly once.
//
// A worker says hello when it starts serving. One that dies before that
// cannot have touched a chunk: nothing is blamed, and after 3 such deaths in
// a row the map fails with ErrWorkersFailing rather than restart workers
// forever. A death between maps is handled when the next map starts.
//
// To find a task that kills its worker, the pool uses what it knows about the
// order of work: a worker handles its chunks one at a time in the order they
// were sent, and its results come back in that order before the EOF, so when
// a worker dies the oldest chunk still in flight on it is the one it was
// working on. That chunk, and only it, is blamed: each of its tasks counts a
// death. It is re-sent whole while that is safe, and split into single-task
// chunks once one more death would fail a task (after the second death, with
// the default MaxRetries of 3), so that the culprit is isolated before
// anything fails: a worker killed from outside costs one re-sent chunk, and a
// poison task costs three workers. The other chunks in flight on the dead
// worker had not been started; they are re-sent whole and count nothing. A
// task blamed Config.MaxRetries times fails with a *TaskError naming its
// index; the rest of the map completes. (With MaxRetries 1, every task of the
// chunk fails at the first death: there is no try left to tell them apart.)
//
// # Cancellation
//
// When the context given to a map is done, the map stops every worker
// (SIGTERM, then SIGKILL after procs.DefaultWaitDelay), waits for all of them,
// and returns the context's cause; the Pool is closed afterwards. Close stops
// an idle pool gracefully: each worker sees EOF on its socket and exits 0.
package pool
