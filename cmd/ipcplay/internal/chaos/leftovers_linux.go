package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"ipcplay/procs"
)

// A snapshot is what this process holds that a chaos run could leak: its
// child processes, its open file descriptors (and among them memfds), and
// the stale socket files in the private temporary directories
// ipc.PrivateDir makes ($TMPDIR/ipcplay-*), where the rpc labs listen.
//
// A socket file is stale when no socket is bound to it any more
// (/proc/net/unix does not list its path): what a process killed while it
// listened leaves. Those of live servers are left out, since other
// ipcplay processes on the machine (a test run, an "rpc serve") make and
// remove their own while a chaos run goes on.
type snapshot struct {
	children []int
	fds      map[int]string // fd -> what /proc/self/fd/N links to
	sockets  []string
}

// takeSnapshot reads the snapshot from /proc and the temporary directory.
func takeSnapshot() (snapshot, error) {
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
	bound, err := boundSockets()
	if err != nil {
		return s, err
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "ipcplay-*"))
	for _, d := range dirs {
		files, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, f := range files {
			if p := filepath.Join(d, f.Name()); f.Type()&os.ModeSocket != 0 && !bound[p] {
				s.sockets = append(s.sockets, p)
			}
		}
	}
	return s, nil
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

// boundSockets returns the paths of the Unix sockets bound in this network
// namespace, from /proc/net/unix (see proc(5)): its last field, when there
// are eight, is the path.
func boundSockets() (map[string]bool, error) {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return nil, fmt.Errorf("list bound sockets: %w", err)
	}
	return parseNetUnix(string(b)), nil
}

func parseNetUnix(s string) map[string]bool {
	paths := map[string]bool{}
	for _, line := range strings.Split(s, "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 8 && strings.HasPrefix(f[7], "/") {
			paths[f[7]] = true
		}
	}
	return paths
}
