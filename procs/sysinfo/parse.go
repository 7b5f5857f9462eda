package sysinfo

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Each function here parses the text of one file, already read; the
// reading lives in read.go. Tests feed them fixture strings.

// parseCPUInfo returns the first "model name" of /proc/cpuinfo (or, on arm64,
// the "CPU implementer"/"CPU part" pair when there is no model name) and
// whether the flags name the hypervisor bit, which the CPU sets when it runs
// under a hypervisor.
func parseCPUInfo(text string) (model string, hypervisor bool) {
	var impl, part string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "model name":
			if model == "" {
				model = val
			}
		case "CPU implementer":
			impl = val
		case "CPU part":
			part = val
		case "flags":
			if !hypervisor {
				hypervisor = hasWord(val, "hypervisor")
			}
		}
	}
	if model == "" && impl != "" {
		model = "implementer " + impl + " part " + part
	}
	if model == "" {
		model = "unknown"
	}
	return model, hypervisor
}

func hasWord(s, w string) bool {
	for f := range strings.FieldsSeq(s) {
		if f == w {
			return true
		}
	}
	return false
}

// parseCPUList counts the CPUs in a kernel CPU list such as "0-3,6,8-9"
// (/sys/devices/system/cpu/online).
func parseCPUList(text string) (int, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return 0, errors.New("parse cpu list: empty")
	}
	n := 0
	for part := range strings.SplitSeq(text, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("parse cpu list %q: %w", text, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return 0, fmt.Errorf("parse cpu list %q: %w", text, err)
			}
		}
		if b < a {
			return 0, fmt.Errorf("parse cpu list %q: range %s backwards", text, part)
		}
		n += b - a + 1
	}
	return n, nil
}

// parseBracketed returns the bracketed choice of a sysfs setting such as
// "always [madvise] never" (transparent_hugepage/enabled), or the whole
// trimmed text when nothing is bracketed.
func parseBracketed(text string) string {
	text = strings.TrimSpace(text)
	if i := strings.IndexByte(text, '['); i >= 0 {
		if j := strings.IndexByte(text[i:], ']'); j > 0 {
			return text[i+1 : i+j]
		}
	}
	return text
}

// vmVendors maps words found in DMI vendor and product strings to the
// names systemd-detect-virt prints, in its order of checking.
var vmVendors = []struct{ word, name string }{
	{"KVM", "kvm"},
	{"Amazon EC2", "amazon"},
	{"QEMU", "qemu"},
	{"VMware", "vmware"},
	{"VMW", "vmware"},
	{"innotek GmbH", "oracle"},
	{"VirtualBox", "oracle"},
	{"Oracle Corporation", "oracle"},
	{"Xen", "xen"},
	{"Bochs", "bochs"},
	{"Parallels", "parallels"},
	{"BHYVE", "bhyve"},
	{"Hyper-V", "microsoft"},
	{"Google Compute Engine", "google"},
	{"Apple Virtualization", "apple"},
	{"Firecracker", "firecracker"},
}

// vmEvidence is what detectVM looks at, each already read ("" if absent).
type vmEvidence struct {
	DMI             []string // sys_vendor, product_name, board_vendor, bios_vendor
	HypervisorType  string   // /sys/hypervisor/type
	HypervisorFlag  bool     // "hypervisor" in /proc/cpuinfo flags
	Clocksources    string   // available_clocksource
	DeviceTreeHyper string   // /proc/device-tree/hypervisor/compatible
}

// detectVM names the hypervisor the way systemd-detect-virt does, from
// files only: DMI strings first, then /sys/hypervisor, the device tree, and
// last the CPU's hypervisor flag, refined by the paravirtual clock the
// kernel offers. It returns "none" on bare metal and "vm" when only the
// flag says there is a hypervisor.
func detectVM(e vmEvidence) string {
	for _, v := range vmVendors {
		for _, s := range e.DMI {
			if strings.Contains(s, v.word) {
				return v.name
			}
		}
	}
	for _, s := range e.DMI {
		if strings.Contains(s, "Microsoft Corporation") && strings.Contains(strings.Join(e.DMI, " "), "Virtual Machine") {
			return "microsoft"
		}
	}
	if t := strings.TrimSpace(e.HypervisorType); t != "" {
		return t // "xen"
	}
	if dt := strings.TrimRight(e.DeviceTreeHyper, "\x00\n"); dt != "" {
		switch {
		case strings.Contains(dt, "kvm"):
			return "kvm"
		case strings.Contains(dt, "xen"):
			return "xen"
		}
		return "vm"
	}
	if !e.HypervisorFlag {
		return "none"
	}
	switch cs := e.Clocksources; {
	case hasWord(cs, "kvm-clock"):
		return "kvm"
	case hasWord(cs, "xen"):
		return "xen"
	case hasWord(cs, "hyperv_clocksource_tsc_page"):
		return "microsoft"
	}
	return "vm"
}

// containerEvidence is what detectContainer looks at ("" if absent).
type containerEvidence struct {
	SystemdContainer string // /run/systemd/container
	DockerEnv        bool   // /.dockerenv exists
	ContainerEnv     bool   // /run/.containerenv exists (podman)
	Init1Environ     string // /proc/1/environ, NUL-separated (often unreadable)
	Cgroup           string // /proc/1/cgroup or /proc/self/cgroup
}

// detectContainer names the container manager, or "none".
func detectContainer(e containerEvidence) string {
	if s := strings.TrimSpace(e.SystemdContainer); s != "" {
		return s
	}
	for kv := range strings.SplitSeq(e.Init1Environ, "\x00") {
		if v, ok := strings.CutPrefix(kv, "container="); ok && v != "" {
			return v
		}
	}
	switch {
	case e.ContainerEnv:
		return "podman"
	case e.DockerEnv:
		return "docker"
	case strings.Contains(e.Cgroup, "/kubepods"):
		return "kubernetes"
	case strings.Contains(e.Cgroup, "/docker/"), strings.Contains(e.Cgroup, "/docker-"):
		return "docker"
	case strings.Contains(e.Cgroup, "/lxc/"), strings.Contains(e.Cgroup, "/lxc.payload"):
		return "lxc"
	}
	return "none"
}

// parseCgroup reads /proc/self/cgroup: the v2 path (from the "0::" line) and
// the v1 path of the cpu controller, each "" when absent.
func parseCgroup(text string) (v2, v1cpu string) {
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		hier, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if hier == "0" && ctrls == "" {
			v2 = path
			continue
		}
		for c := range strings.SplitSeq(ctrls, ",") {
			if c == "cpu" {
				v1cpu = path
			}
		}
	}
	return v2, v1cpu
}

// mount is one cgroup mount from /proc/self/mountinfo.
type mount struct {
	Root, Point string
}

// parseMountinfo finds the cgroup2 mount and the cgroup v1 mount that
// carries the cpu controller in /proc/self/mountinfo. A line reads:
// ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS.
func parseMountinfo(text string) (v2, v1cpu *mount) {
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		sep := -1
		for i, s := range f {
			if s == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(f) < sep+4 {
			continue
		}
		m := &mount{Root: unescapeMount(f[3]), Point: unescapeMount(f[4])}
		switch f[sep+1] {
		case "cgroup2":
			if v2 == nil {
				v2 = m
			}
		case "cgroup":
			for o := range strings.SplitSeq(f[sep+3], ",") {
				if o == "cpu" && v1cpu == nil {
					v1cpu = m
				}
			}
		}
	}
	return v2, v1cpu
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseCPUMax parses cgroup v2 cpu.max, "max 100000" or "150000 100000",
// into CPUs (quota / period); 0 means no limit.
func parseCPUMax(text string) (float64, error) {
	f := strings.Fields(text)
	if len(f) == 0 || len(f) > 2 {
		return 0, fmt.Errorf("parse cpu.max %q: want QUOTA [PERIOD]", text)
	}
	if f[0] == "max" {
		return 0, nil
	}
	period := "100000"
	if len(f) == 2 {
		period = f[1]
	}
	return quotaCPUs(f[0], period)
}

// parseCFS turns cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us into
// CPUs; a quota of -1 means no limit (0).
func parseCFS(quota, period string) (float64, error) {
	if strings.TrimSpace(quota) == "-1" {
		return 0, nil
	}
	return quotaCPUs(quota, period)
}

func quotaCPUs(quota, period string) (float64, error) {
	q, err := strconv.ParseInt(strings.TrimSpace(quota), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse cpu quota: %w", err)
	}
	p, err := strconv.ParseInt(strings.TrimSpace(period), 10, 64)
	if err != nil || p <= 0 || q <= 0 {
		return 0, fmt.Errorf("parse cpu quota %s/%s: want positive numbers", quota, period)
	}
	return float64(q) / float64(p), nil
}

// cpuTimes is the aggregate "cpu" line of /proc/stat, in USER_HZ ticks.
type cpuTimes struct {
	Total, Idle, Steal uint64
	CPUs               int // the number of per-CPU "cpuN" lines
}

// parseProcStat reads the "cpu" line of /proc/stat: user nice system idle
// iowait irq softirq steal guest guest_nice. Total is the sum of the first
// eight (guest time is already inside user and nice); Idle is idle plus
// iowait.
func parseProcStat(text string) (cpuTimes, error) {
	var t cpuTimes
	found := false
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			t.CPUs++
			continue
		}
		if len(f) < 9 {
			return cpuTimes{}, fmt.Errorf("parse /proc/stat cpu line: %d fields, want at least 9", len(f))
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("parse /proc/stat cpu line: %w", err)
			}
			v[i] = n
			t.Total += n
		}
		t.Idle = v[3] + v[4]
		t.Steal = v[7]
		found = true
	}
	if !found {
		return cpuTimes{}, errors.New("parse /proc/stat: no cpu line")
	}
	return t, nil
}

// parseLoadavg returns the 1-minute load average of /proc/loadavg.
func parseLoadavg(text string) (float64, error) {
	f := strings.Fields(text)
	if len(f) < 3 {
		return 0, fmt.Errorf("parse loadavg %q: too few fields", text)
	}
	l, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("parse loadavg: %w", err)
	}
	return l, nil
}
