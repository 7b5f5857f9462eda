package chaos

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"ipcplay/procs"
)

// A snapshot is what this process holds that a chaos run could leak: its
// child processes, its open file descriptors (and among them memfds), and
// the socket files in the run's temporary directory (see withTempDir),
// where ipc.PrivateDir would make the rpc labs' sockets.
type snapshot struct {
	children []int
	fds      map[int]string // fd -> what /proc/self/fd/N links to
	sockets  []string
}

// takeSnapshot reads the snapshot from /proc and from tmp.
func takeSnapshot(tmp string) (snapshot, error) {
	var s snapshot
	var err error
	if s.children, err = procs.Children(os.Getpid()); err != nil {
		return s, err
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return s, fmt.Errorf("list open fds: %w", err)
	}
	s.fds = map[int]string{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, closed since
		}
		s.fds[fd] = link
	}
	err = filepath.WalkDir(tmp, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSocket != 0 {
			s.sockets = append(s.sockets, path)
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("list socket files: %w", err)
	}
	return s, nil
}

// withTempDir makes a temporary directory for the run and points TMPDIR
// at it, so that every process the run starts (pool workers inherit this
// process's environment) makes its temporary files there: a socket file
// left in it is one of theirs, whatever other programs do in the system's
// temporary directory meanwhile (a check of /tmp/ipcplay-* saw other test
// runs' sockets come and go). The returned function puts TMPDIR back and
// removes the directory, once however often it is called.
func withTempDir() (dir string, restore func() error, err error) {
	dir, err = os.MkdirTemp("", "ipcplay-chaos-")
	if err != nil {
		return "", nil, fmt.Errorf("temp dir: %w", err)
	}
	prev, had := os.LookupEnv("TMPDIR")
	os.Setenv("TMPDIR", dir)
	return dir, sync.OnceValue(func() error {
		if had {
			os.Setenv("TMPDIR", prev)
		} else {
			os.Unsetenv("TMPDIR")
		}
		return os.RemoveAll(dir)
	}), nil
}

func (s snapshot) memfds() int {
	n := 0
	for _, l := range s.fds {
		if isMemfd(l) {
			n++
		}
	}
	return n
}

func isMemfd(link string) bool { return strings.HasPrefix(link, "/memfd:") }

// A leftover is one kind of thing a run left behind.
type leftover struct {
	What          string
	Before, After int
	Left          []string // what is there after and was not before
}

// leftovers compares two snapshots: anything the second has that the first
// had not is left over.
func leftovers(before, after snapshot) []leftover {
	kids := leftover{What: "child processes", Before: len(before.children), After: len(after.children)}
	for _, pid := range after.children {
		if !slices.Contains(before.children, pid) {
			kids.Left = append(kids.Left, describePid(pid))
		}
	}
	fds := leftover{What: "open fds", Before: len(before.fds), After: len(after.fds)}
	mem := leftover{What: "memfds", Before: before.memfds(), After: after.memfds()}
	for _, fd := range sortedKeys(after.fds) {
		link := after.fds[fd]
		if l, ok := before.fds[fd]; ok && l == link {
			continue
		}
		d := fmt.Sprintf("fd %d -> %s", fd, link)
		fds.Left = append(fds.Left, d)
		if isMemfd(link) {
			mem.Left = append(mem.Left, d)
		}
	}
	socks := leftover{What: "socket files", Before: len(before.sockets), After: len(after.sockets)}
	for _, p := range after.sockets {
		if !slices.Contains(before.sockets, p) {
			socks.Left = append(socks.Left, p)
		}
	}
	return []leftover{kids, fds, mem, socks}
}

func sortedKeys(m map[int]string) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// describePid names a process by its pid and argv[0], which for a child
// of ipcplay is its role.
func describePid(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return fmt.Sprintf("pid %d", pid)
	}
	argv0, _, _ := strings.Cut(string(b), "\x00")
	return fmt.Sprintf("pid %d (%s)", pid, argv0)
}
