package procs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Children returns the ids of the live processes whose parent is pid, read
// from /proc/PID/stat. Zombies (exited but not yet reaped) are included: they
// are still the parent's to wait for.
func Children(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list children of %d: %w", pid, err)
	}
	var kids []int
	for _, e := range ents {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, err := parentOf(id)
		if err != nil {
			continue // gone since ReadDir
		}
		if ppid == pid {
			kids = append(kids, id)
		}
	}
	return kids, nil
}

// parentOf reads the ppid field of /proc/PID/stat. The command name in field
// 2 may hold spaces and parentheses, so parsing starts after its last ')'.
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("parse /proc/%d/stat: too few fields", pid)
	}
	return strconv.Atoi(string(f[1]))
}
