package cost

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Usage is what the kernel accounts to a process: CPU time split into user
// and system (kernel) time, and context switches split into voluntary (the
// process blocked: a read with nothing to read, a futex wait, a sleep) and
// involuntary (the scheduler took the CPU away). Take one before and one
// after a window and subtract them with [Usage.Sub].
type Usage struct {
	UserNS  int64  `json:"user_ns"`
	SysNS   int64  `json:"sys_ns"`
	VolCS   uint64 `json:"vol_cs"`
	InvolCS uint64 `json:"invol_cs"`
}

// Sub returns u minus v, field by field. A field that went backwards (it
// cannot, unless the two come from different sources) is clamped to zero.
func (u Usage) Sub(v Usage) Usage {
	return Usage{
		UserNS:  max(u.UserNS-v.UserNS, 0),
		SysNS:   max(u.SysNS-v.SysNS, 0),
		VolCS:   subClamp(u.VolCS, v.VolCS),
		InvolCS: subClamp(u.InvolCS, v.InvolCS),
	}
}

// Add returns the field-by-field sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		UserNS:  u.UserNS + v.UserNS,
		SysNS:   u.SysNS + v.SysNS,
		VolCS:   u.VolCS + v.VolCS,
		InvolCS: u.InvolCS + v.InvolCS,
	}
}

func subClamp(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which the
// kernel fixes at 100 for user space on every architecture Go supports on
// Linux, whatever the kernel's own tick rate.
const userHZ = 100

// parseStat reads the user and system CPU time of a whole process (all its
// threads, live and exited) from the text of /proc/PID/stat. The command
// name in field 2 may hold spaces and parentheses, so parsing starts after
// its last ')'. utime and stime are fields 14 and 15, in USER_HZ ticks.
func parseStat(b []byte) (userNS, sysNS int64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("parse stat: no command name")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), so field k is f[k-3].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err := strconv.ParseInt(string(f[11]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse stat utime: %w", err)
	}
	st, err := strconv.ParseInt(string(f[12]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse stat stime: %w", err)
	}
	const nsPerTick = 1e9 / userHZ
	return ut * nsPerTick, st * nsPerTick, nil
}

// parseStatusCS reads voluntary_ctxt_switches and nonvoluntary_ctxt_switches
// from the text of /proc/PID/task/TID/status. These count one thread only:
// the kernel prints the task's own counters, not the thread group's.
func parseStatusCS(b []byte) (vol, invol uint64, err error) {
	var haveVol, haveInvol bool
	for line := range bytes.Lines(b) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(key) {
		case "voluntary_ctxt_switches":
			dst, haveVol = &vol, true
		case "nonvoluntary_ctxt_switches":
			dst, haveInvol = &invol, true
		default:
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse status %s: %w", key, err)
		}
		*dst = n
	}
	if !haveVol || !haveInvol {
		return 0, 0, errors.New("parse status: no context switch counts")
	}
	return vol, invol, nil
}
