package sysinfo

import (
	"fmt"
	"strconv"
	"strings"
)

// System is what a reader needs to trust a figure: the machine, its
// settings and the Go runtime a lab ran on. Strings read "unknown" when a
// file could not be read.
type System struct {
	// Kernel is the kernel release (uname -r): pipe and socket speed
	// change between kernel versions.
	Kernel string `json:"kernel"`

	// Arch is GOARCH.
	Arch string `json:"arch"`

	// CPUModel is the first "model name" of /proc/cpuinfo.
	CPUModel string `json:"cpu_model"`

	// CPUs is the number of online CPUs; UsableCPUs those this process
	// may run on (its affinity mask), as runtime.NumCPU reports.
	CPUs       int `json:"cpus"`
	UsableCPUs int `json:"usable_cpus"`

	// Virtualization names the hypervisor as systemd-detect-virt would
	// ("kvm", "xen", "microsoft", ...), "vm" when only the CPU's
	// hypervisor flag tells, or "none".
	Virtualization string `json:"virtualization"`

	// Container names the container manager ("docker", "podman",
	// "kubernetes", "lxc", ...) or "none".
	Container string `json:"container"`

	// Governor is cpu0's cpufreq scaling governor, or "none" when the
	// kernel exposes no frequency scaling (usual in a VM).
	Governor string `json:"cpu_governor"`

	// THP is the transparent huge pages setting: "always", "madvise" or
	// "never".
	THP string `json:"transparent_hugepages"`

	// CPUQuota is the cgroup CPU limit in CPUs (1.5 = 150 ms per 100 ms);
	// 0 means no limit. CPUQuotaSource says where it was read, or why
	// none was found.
	CPUQuota       float64 `json:"cgroup_cpu_quota"`
	CPUQuotaSource string  `json:"cgroup_cpu_quota_source"`

	// GoVersion and GOMAXPROCS describe the Go runtime.
	GoVersion  string `json:"go_version"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// Summary returns the system on one line for a text report, such as
// "Linux 6.1.0 amd64, AMD EPYC x2 (kvm, docker), governor none, THP madvise,
// no CPU quota, go1.26.0 GOMAXPROCS=2".
func (s System) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Linux %s %s, %s x%d", s.Kernel, s.Arch, s.CPUModel, s.CPUs)
	if s.UsableCPUs != s.CPUs {
		fmt.Fprintf(&b, " (%d usable)", s.UsableCPUs)
	}
	var env []string
	if s.Virtualization != "none" {
		env = append(env, s.Virtualization)
	}
	if s.Container != "none" {
		env = append(env, s.Container)
	}
	if len(env) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(env, ", "))
	}
	fmt.Fprintf(&b, ", governor %s, THP %s, ", s.Governor, s.THP)
	if s.CPUQuota > 0 {
		fmt.Fprintf(&b, "CPU quota %s", strconv.FormatFloat(s.CPUQuota, 'g', 3, 64))
	} else {
		b.WriteString("no CPU quota")
	}
	fmt.Fprintf(&b, ", %s GOMAXPROCS=%d", s.GoVersion, s.GOMAXPROCS)
	return b.String()
}
