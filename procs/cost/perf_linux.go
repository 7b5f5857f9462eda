package cost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tracefsDirs are where tracefs is usually found: its own mount point, and
// the old place under debugfs (which the kernel automounts on access when
// debugfs is mounted).
var defaultTracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

const sysEnterID = "events/raw_syscalls/sys_enter/id"

// unavailableError says why system calls cannot be counted. Its text becomes
// the method: "unavailable: <reason>".
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return "unavailable: " + e.reason }

// tracepointID reads the id of raw_syscalls:sys_enter from the first tracefs
// directory that has it.
func tracepointID(dirs []string) (uint64, error) {
	var denied error
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/" + sysEnterID)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) && denied == nil {
				denied = err
			}
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s/%s: %w", d, sysEnterID, err)
		}
		return id, nil
	}
	if denied != nil {
		return 0, &unavailableError{fmt.Sprintf("%v (tracefs is root's; counting a kernel tracepoint also needs CAP_PERFMON or perf_event_paranoid <= 1, here %s)", denied, paranoid())}
	}
	return 0, &unavailableError{fmt.Sprintf("tracefs not mounted (no %s under %s; as root: mount -t tracefs nodev /sys/kernel/tracing)",
		sysEnterID, strings.Join(dirs, " or "))}
}

// syscallIDs reads the ids of the per-syscall tracepoints
// syscalls:sys_enter_NAME. It returns nil, nil when the kernel has none
// (built without CONFIG_FTRACE_SYSCALLS), and an error naming a name that
// has no tracepoint when the others exist.
func syscallIDs(dirs []string, names []string) (map[string]uint64, error) {
	for _, d := range dirs {
		if _, err := os.Stat(d + "/events/syscalls"); err != nil {
			continue
		}
		ids := make(map[string]uint64, len(names))
		for _, name := range names {
			p := d + "/events/syscalls/sys_enter_" + name + "/id"
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("count %s calls: no tracepoint %s: %w", name, p, err)
			}
			id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", p, err)
			}
			ids[name] = id
		}
		return ids, nil
	}
	return nil, nil
}

// MountTracefs mounts tracefs on /sys/kernel/tracing unless the
// raw_syscalls:sys_enter tracepoint is already visible there or under
// debugfs, as perf(1) does when it needs it. It needs CAP_SYS_ADMIN. The
// mount outlives the process; it changes nothing else.
func MountTracefs() error {
	if _, err := tracepointID(defaultTracefsDirs); err == nil {
		return nil
	}
	if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs: %w", os.NewSyscallError("mount", err))
	}
	return nil
}

// openSysEnter opens a counting (never sampling) perf event on the
// sys_enter tracepoint for one thread, with inherit set so that threads and
// processes it creates later are counted into the same event.
func openSysEnter(id uint64, tid int) (int, error) {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_TRACEPOINT,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Config: id,
		Bits:   unix.PerfBitInherit,
	}
	fd, err := unix.PerfEventOpen(&attr, tid, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// readCount reads the event's count: with no read_format flags, one
// native-endian uint64. For an inherited event the kernel adds the counts
// of the live and exited threads that inherited it.
func readCount(fd int) (uint64, error) {
	var buf [8]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		return 0, os.NewSyscallError("read perf event", err)
	}
	if n != len(buf) {
		return 0, fmt.Errorf("read perf event: %d bytes, want 8", n)
	}
	return binary.NativeEndian.Uint64(buf[:]), nil
}

// paranoid returns kernel.perf_event_paranoid, or "unknown".
func paranoid() string {
	if b, err := os.ReadFile("/proc/sys/kernel/perf_event_paranoid"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return "unknown"
}

// permissionReason turns perf_event_open's refusal into the reason a
// reader needs, naming perf_event_paranoid.
func permissionReason(err error) error {
	switch {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return &unavailableError{fmt.Sprintf("perf_event_open: %v (perf_event_paranoid=%s; counting kernel tracepoints needs CAP_PERFMON, root, or perf_event_paranoid <= 1)", err, paranoid())}
	case errors.Is(err, unix.ENOSYS):
		return &unavailableError{"perf_event_open: not supported by this kernel"}
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		return &unavailableError{fmt.Sprintf("perf_event_open of raw_syscalls:sys_enter: %v", err)}
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
		return &unavailableError{fmt.Sprintf("perf_event_open: %v (one descriptor per thread)", err)}
	}
	return nil
}
