package report

import (
	"time"

	"ipcplay/procs/cost"
)

// A CostTable is the per-message cost breakdown every lab that moves
// messages prints the same way: system calls, context switches, CPU time in
// user space and in the kernel, bytes on the wire and encode+decode time,
// each divided by the messages (or tasks) moved.
type CostTable struct {
	t    *Table
	per  string
	rows []cost.Breakdown
}

// CostTable adds a cost table whose rows are per one of what (a "message",
// a "task").
func (r *Report) CostTable(what string) *CostTable {
	t := r.Table("cost", "where the time goes, per "+what,
		Col("run", "run", Text),
		Col("syscalls", "syscalls", Float),
		Opt("vol_cs", "vol cs", Float, 3),
		Opt("invol_cs", "invol cs", Float, 4),
		Col("user_ns", "user", Nanos),
		Col("sys_ns", "kernel", Nanos),
		Col("kernel_share", "kernel", Percent),
		Opt("bytes", "bytes", Float, 2),
		Opt("codec_ns", "codec", Nanos, 1),
	)
	return &CostTable{t: t, per: what}
}

// Add adds the breakdown of one run.
func (c *CostTable) Add(run string, b cost.Breakdown) {
	var sys any
	if b.SyscallMethod == cost.MethodTracepoint {
		sys = b.Syscalls
	}
	ns := func(f float64) time.Duration { return time.Duration(f + 0.5) }
	var codec any
	if b.CodecNS > 0 {
		codec = ns(b.CodecNS)
	}
	c.t.Row(run, sys, b.VolCS, b.InvolCS, ns(b.UserNS), ns(b.SysNS), 100*b.KernelShare(), b.Bytes, codec)
	c.rows = append(c.rows, b)
}

// Finish adds the notes that say how the table was measured, and returns
// the plain-words summary of the first row (Breakdown.Dominant), for a
// verdict.
func (c *CostTable) Finish() string {
	if len(c.rows) == 0 {
		return ""
	}
	method := c.rows[0].SyscallMethod
	if method == cost.MethodTracepoint {
		c.t.Notef("SYSCALLS counts every system call of every process involved (the raw_syscalls:sys_enter tracepoint, per thread, through perf_event_open); VOL and INVOL CS are voluntary and involuntary context switches; USER and KERNEL are CPU time; all per %s.", c.per)
	} else {
		c.t.Notef("system calls not counted here (%s); `ipcplay doctor` says why. VOL and INVOL CS are context switches, USER and KERNEL CPU time, all per %s.", method, c.per)
	}
	return c.rows[0].Dominant()
}
