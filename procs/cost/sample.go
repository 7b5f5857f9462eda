package cost

import (
	"fmt"
	"strconv"
	"strings"
)

// MethodTracepoint is [Sample.SyscallMethod] when system calls were counted
// with the raw_syscalls:sys_enter tracepoint. Otherwise the method reads
// "unavailable: " and the reason.
const MethodTracepoint = "tracepoint"

// Sample is what a [Counter] measured over its window, summed over the
// processes it watched. Bytes and CodecNS are the caller's to fill in: the
// counter cannot see what went over the wire or how long encoding took.
type Sample struct {
	// Syscalls counts every system call entered by every thread of the
	// measured processes (and threads or processes they created) inside
	// the window, when SyscallMethod is MethodTracepoint; zero otherwise.
	Syscalls uint64 `json:"syscalls"`

	// SyscallMethod is MethodTracepoint ("tracepoint"), or
	// "unavailable: <reason>" when the kernel did not allow counting.
	SyscallMethod string `json:"syscall_method"`

	// Usage is the CPU time and context switches of the processes inside
	// the window. For a live child these come from /proc (CPU time in
	// 10 ms ticks); for this process and reaped children from getrusage.
	Usage

	// WallNS is the window's length.
	WallNS int64 `json:"wall_ns"`

	// Bytes is what went over the wire in the window (caller-supplied).
	Bytes int64 `json:"bytes"`

	// CodecNS is the time spent encoding and decoding (caller-supplied).
	CodecNS int64 `json:"codec_ns"`

	// UnsureThreads counts threads that appeared while Start attached; their
	// system calls were counted only if the thread that made them was
	// already attached. Zero in the usual case.
	UnsureThreads int `json:"unsure_threads"`

	// CounterNS is the counter's own cost in the caller: the time spent
	// inside Start and Stop. (Its cost inside the measured processes, a few
	// hundred ns per system call for the tracepoint, is in the package doc.)
	CounterNS int64 `json:"counter_ns"`

	// ByName counts the system calls named in Options.ByName, by name.
	ByName map[string]uint64 `json:"by_name,omitempty"`

	// Procs breaks the sums down by process, in the order given to Start.
	Procs []Proc `json:"procs"`
}

// Proc is one measured process's share of a [Sample].
type Proc struct {
	PID           int    `json:"pid"`
	Syscalls      uint64 `json:"syscalls"`
	Threads       int    `json:"threads"` // threads attached at Start
	UnsureThreads int    `json:"unsure_threads"`
	Usage
	ByName map[string]uint64 `json:"by_name,omitempty"`
}

// Breakdown is a [Sample] divided by a number of messages (or tasks): the
// cost of one.
type Breakdown struct {
	Messages      uint64  `json:"messages"`
	Syscalls      float64 `json:"syscalls_per_msg"`
	SyscallMethod string  `json:"syscall_method"`
	VolCS         float64 `json:"vol_cs_per_msg"`
	InvolCS       float64 `json:"invol_cs_per_msg"`
	UserNS        float64 `json:"user_ns_per_msg"`
	SysNS         float64 `json:"sys_ns_per_msg"`
	WallNS        float64 `json:"wall_ns_per_msg"`
	Bytes         float64 `json:"bytes_per_msg"`
	CodecNS       float64 `json:"codec_ns_per_msg"`

	// ByName is Sample.ByName per message.
	ByName map[string]float64 `json:"by_name_per_msg,omitempty"`
}

// Per divides s by n messages. Per(0) returns a Breakdown with only the
// method set: no message, no cost per message.
func (s Sample) Per(n uint64) Breakdown {
	b := Breakdown{Messages: n, SyscallMethod: s.SyscallMethod}
	if n == 0 {
		return b
	}
	d := float64(n)
	b.Syscalls = float64(s.Syscalls) / d
	b.VolCS = float64(s.VolCS) / d
	b.InvolCS = float64(s.InvolCS) / d
	b.UserNS = float64(s.UserNS) / d
	b.SysNS = float64(s.SysNS) / d
	b.WallNS = float64(s.WallNS) / d
	b.Bytes = float64(s.Bytes) / d
	b.CodecNS = float64(s.CodecNS) / d
	for name, c := range s.ByName {
		if b.ByName == nil {
			b.ByName = make(map[string]float64, len(s.ByName))
		}
		b.ByName[name] = float64(c) / d
	}
	return b
}

// KernelShare is the fraction of CPU time spent in the kernel, from 0 to 1,
// or 0 when no CPU time was measured.
func (b Breakdown) KernelShare() float64 {
	cpu := b.UserNS + b.SysNS
	if cpu <= 0 {
		return 0
	}
	return b.SysNS / cpu
}

// Dominant is a one-line plain verdict naming the dominant cost, such as
// "71% of CPU in the kernel; 0.02 system calls per message (one per 50)".
func (b Breakdown) Dominant() string {
	if b.Messages == 0 {
		return "no messages: no cost per message"
	}
	var parts []string
	cpu := b.UserNS + b.SysNS
	switch {
	case cpu <= 0:
		parts = append(parts, "no CPU time measured (the window is shorter than the kernel's accounting tick)")
	case b.SysNS >= b.UserNS:
		parts = append(parts, fmt.Sprintf("%.0f%% of CPU in the kernel", 100*b.SysNS/cpu))
	case b.CodecNS > 0 && b.CodecNS >= b.UserNS/2:
		parts = append(parts, fmt.Sprintf("%.0f%% of CPU in user space, most of it encoding and decoding (%s ns per message)",
			100*b.UserNS/cpu, Num(b.CodecNS)))
	default:
		parts = append(parts, fmt.Sprintf("%.0f%% of CPU in user space", 100*b.UserNS/cpu))
	}
	switch {
	case b.SyscallMethod != MethodTracepoint:
		parts = append(parts, "system calls not counted ("+strings.TrimPrefix(b.SyscallMethod, "unavailable: ")+")")
	case b.Syscalls > 0 && b.Syscalls < 0.5:
		parts = append(parts, fmt.Sprintf("%s system calls per message (one per %.0f)%s", Num(b.Syscalls), 1/b.Syscalls, b.topSyscall()))
	default:
		parts = append(parts, count(b.Syscalls, "system call", "system calls")+" per message"+b.topSyscall())
	}
	if cs := b.VolCS + b.InvolCS; cs >= 0.1 {
		parts = append(parts, count(cs, "context switch", "context switches")+" per message")
	}
	return strings.Join(parts, "; ")
}

// topSyscall names the counted system call that makes at least half of
// all, as ", mostly futex (61%)", or returns "".
func (b Breakdown) topSyscall() string {
	var top string
	var most float64
	for name, n := range b.ByName {
		if n > most || (n == most && name < top) {
			top, most = name, n
		}
	}
	if top == "" || b.Syscalls <= 0 || most < b.Syscalls/2 {
		return ""
	}
	return fmt.Sprintf(", mostly %s (%.0f%%)", top, 100*most/b.Syscalls)
}

// count formats x with the noun, singular when x reads as 1.
func count(x float64, one, many string) string {
	if n := Num(x); n != "1" {
		return n + " " + many
	}
	return "1 " + one
}

// Num formats a per-message figure for a reader: whole numbers from 100,
// one decimal from 10, two significant digits below, "0" for zero.
func Num(x float64) string {
	switch {
	case x == 0:
		return "0"
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	case x < 0.0001:
		return "<0.0001"
	}
	return strconv.FormatFloat(x, 'g', 2, 64)
}
