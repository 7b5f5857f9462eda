package sysinfo

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// root is the file system the readers look at: "/" on a real machine, a
// fixture tree in tests (prometheus/procfs's habit of a swappable mount point).
type root string

func (r root) path(p string) string { return filepath.Join(string(r), p) }

// read returns the trimmed text of a file, or "" when it cannot be read.
func (r root) read(p string) string {
	b, err := os.ReadFile(r.path(p))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (r root) exists(p string) bool {
	_, err := os.Stat(r.path(p))
	return err == nil
}

// Read describes the machine this process runs on. It never fails: a
// figure it cannot read says "unknown" (or 0 for numbers), so that a report
// can always carry it.
func Read() System {
	return read(root("/"))
}

func read(r root) System {
	s := System{
		Kernel:     r.read("proc/sys/kernel/osrelease"),
		Arch:       runtime.GOARCH,
		UsableCPUs: runtime.NumCPU(),
		GoVersion:  runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	if s.Kernel == "" {
		s.Kernel = "unknown"
	}
	cpuinfo := r.read("proc/cpuinfo")
	var hyper bool
	s.CPUModel, hyper = parseCPUInfo(cpuinfo)
	if n, err := parseCPUList(r.read("sys/devices/system/cpu/online")); err == nil {
		s.CPUs = n
	}
	s.Virtualization = detectVM(vmEvidence{
		DMI: []string{
			r.read("sys/class/dmi/id/sys_vendor"),
			r.read("sys/class/dmi/id/product_name"),
			r.read("sys/class/dmi/id/board_vendor"),
			r.read("sys/class/dmi/id/bios_vendor"),
		},
		HypervisorType:  r.read("sys/hypervisor/type"),
		HypervisorFlag:  hyper,
		Clocksources:    r.read("sys/devices/system/clocksource/clocksource0/available_clocksource"),
		DeviceTreeHyper: r.read("proc/device-tree/hypervisor/compatible"),
	})
	cg := r.read("proc/self/cgroup")
	s.Container = detectContainer(containerEvidence{
		SystemdContainer: r.read("run/systemd/container"),
		DockerEnv:        r.exists(".dockerenv"),
		ContainerEnv:     r.exists("run/.containerenv"),
		Init1Environ:     r.read("proc/1/environ"),
		Cgroup:           r.read("proc/1/cgroup") + "\n" + cg,
	})
	s.Governor = r.read("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
	if s.Governor == "" {
		s.Governor = "none"
	}
	s.THP = parseBracketed(r.read("sys/kernel/mm/transparent_hugepage/enabled"))
	if s.THP == "" {
		s.THP = "unknown"
	}
	s.CPUQuota, s.CPUQuotaSource = r.cpuQuota(cg, r.read("proc/self/mountinfo"))
	return s
}

// cpuQuota finds this process's cgroup CPU limit: cgroup v2 cpu.max first,
// then v1 cpu.cfs_quota_us, each checked from the process's own cgroup up to
// the mount's root (a parent's limit binds its children); the tightest wins.
func (r root) cpuQuota(cgroup, mountinfo string) (float64, string) {
	v2path, v1path := parseCgroup(cgroup)
	v2, v1 := parseMountinfo(mountinfo)
	if v2 != nil && v2path != "" {
		if q, src, ok := r.walkQuota(v2, v2path, "cgroup v2", func(dir string) (float64, string, bool) {
			text := r.read(filepath.Join(dir, "cpu.max"))
			if text == "" {
				return 0, "", false
			}
			q, err := parseCPUMax(text)
			return q, "cpu.max " + text, err == nil
		}); ok {
			return q, src
		}
	}
	if v1 != nil && v1path != "" {
		if q, src, ok := r.walkQuota(v1, v1path, "cgroup v1", func(dir string) (float64, string, bool) {
			quota := r.read(filepath.Join(dir, "cpu.cfs_quota_us"))
			period := r.read(filepath.Join(dir, "cpu.cfs_period_us"))
			if quota == "" || period == "" {
				return 0, "", false
			}
			q, err := parseCFS(quota, period)
			return q, fmt.Sprintf("cpu.cfs_quota_us %s, cpu.cfs_period_us %s", quota, period), err == nil
		}); ok {
			return q, src
		}
	}
	return 0, "no cgroup cpu controller found"
}

// walkQuota applies read to each directory from the process's cgroup up to
// the mount point and keeps the tightest limit. ok is false when no level
// had the controller's files.
func (r root) walkQuota(m *mount, cgPath, version string, read func(dir string) (float64, string, bool)) (q float64, src string, ok bool) {
	rel := cgPath
	if m.Root != "/" {
		rel = strings.TrimPrefix(cgPath, m.Root)
	}
	dir := filepath.Join(m.Point, rel)
	for {
		if lq, lsrc, lok := read(dir); lok {
			if !ok || (lq > 0 && (q == 0 || lq < q)) {
				q, src = lq, fmt.Sprintf("%s %s at %s", version, lsrc, dir)
			}
			ok = true
		}
		if dir == m.Point || dir == "/" || dir == "." {
			break
		}
		dir = filepath.Dir(dir)
	}
	return q, src, ok
}
