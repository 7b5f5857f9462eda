package pipelab

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// kernelResize asks the kernel itself for a pipe of size bytes with
// F_SETPIPE_SZ on a fresh pipe, without the pipe-max-size check that
// pipes.Resize makes first, and returns the capacity it granted. The
// kernel lets a process with CAP_SYS_RESOURCE (root) go past
// /proc/sys/fs/pipe-max-size and refuses others with EPERM.
func kernelResize(size int) (int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	defer w.Close()
	rc, err := w.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ferr error
	if err := rc.Control(func(fd uintptr) { n, ferr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size) }); err != nil {
		return 0, err
	}
	if ferr != nil {
		return 0, os.NewSyscallError("F_SETPIPE_SZ", ferr)
	}
	return n, nil
}

// capSysResource is CAP_SYS_RESOURCE's bit in /proc/PID/status's CapEff.
const capSysResource = 24

// hasCapSysResource reports whether this process holds CAP_SYS_RESOURCE,
// the capability that lets it go past pipe-max-size; ok is false when
// /proc/self/status cannot tell. Root usually has it, root in a container
// often has not.
func hasCapSysResource() (has, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, found := strings.CutPrefix(line, "CapEff:"); found {
			caps, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
			if err != nil {
				return false, false
			}
			return caps&(1<<capSysResource) != 0, true
		}
	}
	return false, false
}
