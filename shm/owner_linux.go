package shm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// This file tells who holds a lock and whether that process still runs.
//
// A process is named by its pid and its start time (field 22 of
// /proc/PID/stat, clock ticks since boot), together: a pid alone may be
// reused by a new process once the old one is reaped, and the pair is
// what tells them apart. Lock words store both in one 64-bit word (see
// ident), so that nobody ever compares a pid with the start time of some
// other process.
//
// Whether a process runs is asked of the kernel twice: kill(pid, 0), which
// fails with ESRCH only when no process has the pid (EPERM means it exists
// and belongs to another user), and /proc/PID/stat, for the start time and
// the zombie state. Whatever cannot be seen is unknown, never dead: /proc
// mounted with hidepid= hides other users' processes (ENOENT or EACCES),
// and a lock shared with a process of another pid namespace holds a pid
// that means nothing here. A waiter that cannot tell keeps waiting.

// ident names a process in a lock word: the pid in the low 32 bits (bit 31
// is free for a lock's waiters bit, pids being below 2^22), the low 32 bits
// of its start time in the high 32 bits. A start time of zero means it was
// not known, and then only the pid is checked.
type ident uint64

func makeIdent(pid, start uint32) ident { return ident(uint64(start)<<32 | uint64(pid)) }

func (id ident) pid() uint32   { return uint32(id) &^ waitersBit }
func (id ident) start() uint32 { return uint32(id >> 32) }

// pidMax is PID_MAX_LIMIT: no pid is above it.
const pidMax = 1 << 22

// myIdentWord caches this process's ident; zero means not yet read. Go
// processes do not fork without exec, so it never goes stale.
var myIdentWord atomic.Uint64

// myIdent returns this process's ident. Its start time comes from
// /proc/self/stat, which is this process whatever pid namespace /proc
// belongs to.
func myIdent() ident {
	if id := myIdentWord.Load(); id != 0 {
		return ident(id)
	}
	var start uint32
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		if st, err := parseStat(b); err == nil {
			start = st.start - bootOffset()
		}
	}
	id := makeIdent(uint32(os.Getpid()), start)
	myIdentWord.Store(uint64(id))
	return id
}

// self returns this process's pid in the high 32 bits and its start time
// in the low 32 bits.
func self() uint64 {
	id := myIdent()
	return uint64(id.pid())<<32 | uint64(id.start())
}

type procStat struct {
	state   byte
	threads int // num_threads, field 20
	start   uint32
}

var errNoProcess = errors.New("no such process")

// readProcStat reads /proc/PID/stat. It is a variable only so that tests
// can hide a process from it, as hidepid= does (see hideProcs in the
// tests); nothing else sets it.
var readProcStat = func(pid int) ([]byte, error) {
	return os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
}

// readStat reads the state and start time of process pid (see
// proc_pid_stat(5)). It returns errNoProcess if /proc has no such pid,
// which is not proof that the process is gone (see lifeOf).
func readStat(pid int) (procStat, error) {
	b, err := readProcStat(pid)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return procStat{}, errNoProcess
		}
		return procStat{}, err
	}
	st, err := parseStat(b)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	st.start -= bootOffset()
	return st, nil
}

// bootOffset returns the boottime offset of this process's time namespace
// (time_namespaces(7)) in clock ticks, 0 outside one. /proc gives start
// times shifted by the reader's offset: a process records its start time,
// and reads others', less its own offset, so that processes of different
// time namespaces name a process alike (to a tick, see sameStart).
var bootOffset = sync.OnceValue(func() uint32 {
	b, err := os.ReadFile("/proc/self/timens_offsets")
	if err != nil {
		return 0 // a kernel without time namespaces
	}
	return parseBootOffset(b)
})

// clockTicks is USER_HZ, the unit of /proc's times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// parseBootOffset reads the boottime line of /proc/PID/timens_offsets,
// "boottime <seconds> <nanoseconds>", as clock ticks (modulo 2^32, as
// start times are kept).
func parseBootOffset(b []byte) uint32 {
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) != 3 || string(f[0]) != "boottime" {
			continue
		}
		sec, err1 := strconv.ParseInt(string(f[1]), 10, 64)
		nsec, err2 := strconv.ParseInt(string(f[2]), 10, 64)
		if err1 != nil || err2 != nil {
			return 0
		}
		return uint32(sec*clockTicks + nsec/(1e9/clockTicks))
	}
	return 0
}

// sameStart reports whether start times a and b, both less their
// reader's boottime offset, name the same process. A offset that is not a
// whole number of ticks rounds the two readings differently, by at most a
// tick; two processes that had one pid in turn started further apart than
// that, the pid space having to wrap between them.
func sameStart(a, b uint32) bool {
	d := a - b
	return d == 0 || d == 1 || d == ^uint32(0)
}

// parseStat parses a /proc/PID/stat line. The command name, field 2, is in
// parentheses and may itself hold spaces and parentheses, so the fields
// are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("no ')'")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("%d fields", len(f)+2)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("starttime: %w", err)
	}
	threads, err := strconv.Atoi(string(f[17]))
	if err != nil {
		return procStat{}, fmt.Errorf("num_threads: %w", err)
	}
	return procStat{state: f[0][0], threads: threads, start: uint32(start)}, nil
}

// life is what can be told about a process.
type life int

const (
	lifeAlive life = iota
	lifeDead
	lifeUnknown // cannot see it: keep waiting
)

// lifeOf tells whether the process named by pid and start runs. Dead means
// certain: no process has the pid, or the one that has it is a zombie
// (exited, holding nothing; not merely its main thread), or started at
// another time (the pid was reused). Unknown covers everything that cannot be seen.
func lifeOf(pid, start uint32) life {
	if pid == 0 {
		return lifeUnknown
	}
	if pid > pidMax {
		return lifeDead
	}
	if err := unix.Kill(int(pid), 0); errors.Is(err, unix.ESRCH) {
		return lifeDead
	}
	if !procIsOurs() {
		return lifeUnknown
	}
	st, err := readStat(int(pid))
	if errors.Is(err, errNoProcess) {
		// kill saw it a moment ago: either it died since, or /proc
		// hides it from us (hidepid=2). Ask kill again.
		if err := unix.Kill(int(pid), 0); errors.Is(err, unix.ESRCH) {
			return lifeDead
		}
		return lifeUnknown
	}
	if err != nil {
		return lifeUnknown // EACCES under hidepid=1, or unparsable
	}
	// The state is the main thread's: Z with other threads left is a
	// process whose main thread ended alone (pthread_exit) and which
	// runs on. A zombie holds nothing when only its leader is left.
	if (st.state == 'Z' || st.state == 'X' || st.state == 'x') && st.threads <= 1 {
		return lifeDead
	}
	if start != 0 && !sameStart(st.start, start) {
		return lifeDead
	}
	return lifeAlive
}

// alive reports whether the process that recorded itself with pid and
// start may still run: a process that cannot be seen counts as alive.
func alive(pid, start uint32) bool { return lifeOf(pid, start) != lifeDead }

// procIsOurs reports whether /proc shows this process's pid namespace: a
// process in a new pid namespace that did not mount its own /proc sees its
// parent namespace's, where its pids name other processes.
var procIsOurs = sync.OnceValue(func() bool {
	s, err := os.Readlink("/proc/self")
	return err == nil && s == strconv.Itoa(os.Getpid())
})

// myPidNS returns the inode number of this process's pid namespace, or 0
// if it cannot be read. Namespace inodes are 32-bit numbers above
// 0xF0000000, so neither 0 nor nsMixed is ever one.
var myPidNS = sync.OnceValue(func() uint32 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil || st.Ino > 1<<32-1 {
		return 0
	}
	return uint32(st.Ino)
})

// nsMixed marks a lock used from more than one pid namespace (or from a
// process that cannot tell its own): the pids in it cannot all be checked,
// so nobody takes it over from an owner that looks dead.
const nsMixed = 1

// noteNS records this process's pid namespace in the lock's namespace word
// before the process may own the lock, so that a waiter never judges an
// owner's pid in the wrong namespace.
func noteNS(w *atomic.Uint32) {
	my := myPidNS()
	if w.Load() == my && my != 0 {
		return
	}
	if my == 0 {
		w.Store(nsMixed)
		return
	}
	if w.CompareAndSwap(0, my) {
		return
	}
	if w.Load() != my {
		w.Store(nsMixed)
	}
}

// ownerDead reports whether the process id, which holds a lock whose
// namespace word is ns, is certainly dead.
func ownerDead(ns *atomic.Uint32, id ident) bool {
	if v := ns.Load(); v == nsMixed || v != myPidNS() {
		return false
	}
	return lifeOf(id.pid(), id.start()) == lifeDead
}
