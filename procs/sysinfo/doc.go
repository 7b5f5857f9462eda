// Package sysinfo describes the machine a lab ran on and what else happened
// on it during the run: what a reader needs to trust a figure.
//
//	sys := sysinfo.Read()          // kernel, CPUs, VM, governor, THP, quota, Go
//	run, err := sysinfo.StartRun() // snapshot of /proc/stat and /proc/loadavg
//	if err != nil { ... }
//	... the lab's measurements ...
//	st, err := run.Stop()          // steal time, busy CPUs, load over the run
//	if bad, why := st.Disturbed(); bad {
//		fmt.Println("warning:", why)
//	}
//
// [System] is the static part, with snake_case JSON names for a report's
// "system" object; [System.Summary] is its one-line text form. [RunStats]
// is the dynamic part, durations in integer nanoseconds in fields ending in
// _ns.
//
// Everything is read from files; no external program runs:
//
//   - kernel: /proc/sys/kernel/osrelease;
//   - CPU model and count: /proc/cpuinfo, /sys/devices/system/cpu/online,
//     and runtime.NumCPU for the affinity mask;
//   - virtualization, the way systemd-detect-virt decides it: the DMI strings
//     in /sys/class/dmi/id, /sys/hypervisor/type, the device tree, then the
//     CPU's "hypervisor" flag, refined by the paravirtual clocksource
//     (kvm-clock means KVM) when no DMI is exposed (Firecracker, for one);
//   - container: /run/systemd/container, container= in /proc/1/environ,
//     /run/.containerenv, /.dockerenv, then cgroup paths;
//   - CPU governor: /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor,
//     "none" without cpufreq;
//   - transparent huge pages: the bracketed choice of
//     /sys/kernel/mm/transparent_hugepage/enabled;
//   - cgroup CPU quota: cgroup v2 cpu.max of this process's cgroup and its
//     ancestors (found through /proc/self/cgroup and /proc/self/mountinfo),
//     else cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us; the tightest
//     level wins;
//   - steal time and busy CPUs: the aggregate cpu line of /proc/stat at
//     StartRun and at Stop; load: /proc/loadavg's 1-minute figure at both.
//
// Each file has a pure parse function, tested against fixture strings;
// reading is kept apart and can be pointed at a fixture tree, the way
// prometheus/procfs swaps its mount point. Nothing runs at package
// initialisation, so child processes may import the package freely.
//
// The 1-minute load average is smoothed over a minute: for a run of a few
// seconds, Load1Start says what else was running before, and Load1End mixes
// in the run itself. A lab that runs more busy processes than CPUs raises
// the load by itself, and Disturbed says so: its figures measure the
// scheduler as much as the mechanism.
package sysinfo
