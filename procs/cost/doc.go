// Package cost measures what a set of processes spent over a window, so that
// a lab can print the cost of one message (or task) and name the dominant
// part: system calls, context switches, user and kernel CPU time, plus the
// bytes on the wire and the encode+decode time the lab supplies itself.
//
//	ctr, err := cost.Start(producer.Pid(), consumer.Pid(), os.Getpid())
//	if err != nil { ... }
//	defer ctr.Close()
//	... move n messages ...
//	s, err := ctr.Stop()
//	s.Bytes, s.CodecNS = wireBytes, codecNS
//	b := s.Per(n)
//	fmt.Println(b.Dominant()) // 71% of CPU in the kernel; 0.02 system calls per message (one per 50)
//
// # System calls
//
// Every system call of every thread is counted with the kernel's
// raw_syscalls:sys_enter tracepoint: one counting perf event (never
// sampling, so no ring buffer and no records) per thread, opened with
// perf_event_open(2). /proc/PID/io's syscr and syscw would miss recvmsg,
// sendmsg, futex, epoll_pwait, nanosleep and clock_gettime. The tracepoint's
// id is read from tracefs (/sys/kernel/tracing, or /sys/kernel/debug/tracing);
// [MountTracefs] mounts it when it is missing, as perf(1) does.
//
// [StartWith] with [Options].ByName also counts chosen system calls one by
// one ("sendmsg", "futex", ...) through the per-syscall tracepoints
// syscalls:sys_enter_NAME; [Breakdown.Dominant] then names the call that
// makes at least half of all ("mostly futex (61%)").
//
// [Sample.SyscallMethod] says what happened: [MethodTracepoint], or
// "unavailable: <reason>" when tracefs is not mounted or the kernel refuses.
// Counting a kernel tracepoint needs root, CAP_PERFMON, or
// kernel.perf_event_paranoid at 1 or below. The rest of the sample is
// measured either way.
//
// # Attaching to running processes
//
// A perf event follows one thread. [Start] lists /proc/PID/task and opens
// one event per thread with inherit set, so threads (and processes) that an
// attached thread creates later are counted into its event, including after
// exec. The limits:
//
//   - Only calls entered after Start count. A call already blocked at Start
//     (a read waiting for data) is not counted; the next one is.
//   - A thread created while Start attaches, by a thread not yet attached,
//     is missed. Start lists the threads again when it is done and reports
//     those it did not see the first time in [Sample.UnsureThreads]. Attach
//     to a child after it reports ready: by then the Go runtime has made
//     most of its threads.
//   - Attaching this process with inherit also counts children it starts
//     inside the window: start the children first.
//   - The counter's own calls in this process are counted when this
//     process is measured: about 10 in an empty window, plus one
//     perf_event_open per extra event with Options.ByName
//     (TestCounterOwnCalls).
//
// # CPU time and context switches
//
// Usage comes from the kernel's accounting. For a live child, [ReadUsage]
// reads /proc/PID/stat (user and system time of the whole thread group, in
// 10 ms ticks) and sums voluntary and involuntary switches over
// /proc/PID/task/*/status (live threads only). For this process, [SelfUsage]
// calls getrusage(RUSAGE_SELF) (microseconds, all threads). For a child that
// has been waited for, [UsageOf] takes the rusage from its
// [os.ProcessState]; pass it to [Counter.Exited] before Stop, or Stop fails
// with [ErrExited] for that process. [ThreadUsage] and [ChildrenUsage] are
// there for snapshots of one thread and of all reaped children. Every Usage is
// a snapshot: take two and [Usage.Sub] them.
//
// The kernel samples user against system time at its tick, so short windows
// (under about 100 ms) give coarse splits; use enough messages.
//
// # Overhead
//
// Measured on the 2-core CI VM with a load average above 30 (three runs of
// go test -run XXX -bench Syscall -benchtime=200000x ./procs/cost; CPU
// time of the calling thread per getppid(2), which waiting for a CPU does
// not inflate):
//
//   - no counter: 1015 to 1068 ns (a system call is slow on this VM);
//   - a counter open on another process: 1061 to 1147 ns. While any
//     sys_enter event is open, every thread on the machine takes the
//     kernel's syscall tracing path, measured or not;
//   - a counter on this process: 1190 to 1351 ns, so counting costs about
//     150 to 300 ns per system call of a measured process;
//   - with eight per-name counters besides: 1337 to 1749 ns.
//
// In the caller, the first event opened registers the tracepoint (about
// 1 ms) and the last one closed unregisters it, waiting for an RCU grace
// period (10 to 30 ms): Start plus Stop took 22 to 47 ms
// (BenchmarkStartStop), all of it outside the window. [Sample.CounterNS]
// reports it for each window.
//
// A [Counter] holds one descriptor per thread until Stop or Close.
package cost
