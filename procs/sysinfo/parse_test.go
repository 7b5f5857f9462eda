package sysinfo

import (
	"testing"
)

const cpuinfoX86 = `processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B13 64-Core Processor
flags		: fpu vme de pse tsc msr hypervisor lahf_lm

processor	: 1
model name	: AMD EPYC 7B13 64-Core Processor
flags		: fpu vme de pse tsc msr hypervisor lahf_lm
`

const cpuinfoMetal = `processor	: 0
model name	: Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz
flags		: fpu vme de pse tsc msr hypervisorx
`

const cpuinfoArm = `processor	: 0
BogoMIPS	: 50.00
Features	: fp asimd evtstrm
CPU implementer	: 0x41
CPU part	: 0xd0c
`

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		name, text, model string
		hyper             bool
	}{
		{"x86-vm", cpuinfoX86, "AMD EPYC 7B13 64-Core Processor", true},
		{"x86-metal", cpuinfoMetal, "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", false},
		{"arm64", cpuinfoArm, "implementer 0x41 part 0xd0c", false},
		{"empty", "", "unknown", false},
	}
	for _, tt := range tests {
		t.Run("case="+tt.name, func(t *testing.T) {
			m, h := parseCPUInfo(tt.text)
			if m != tt.model || h != tt.hyper {
				t.Fatalf("parseCPUInfo = %q, %v; want %q, %v", m, h, tt.model, tt.hyper)
			}
		})
	}
}

func TestParseCPUList(t *testing.T) {
	for text, want := range map[string]int{"0": 1, "0-1\n": 2, "0-3,6,8-9": 7} {
		if got, err := parseCPUList(text); err != nil || got != want {
			t.Errorf("parseCPUList(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "0-x"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) = nil error, want one", bad)
		}
	}
}

func TestParseBracketed(t *testing.T) {
	for text, want := range map[string]string{
		"always [madvise] never\n": "madvise",
		"[always] madvise never":   "always",
		"always madvise [never]":   "never",
		"performance":              "performance",
		"":                         "",
	} {
		if got := parseBracketed(text); got != want {
			t.Errorf("parseBracketed(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestDetectVM(t *testing.T) {
	tests := []struct {
		name string
		e    vmEvidence
		want string
	}{
		{"metal", vmEvidence{DMI: []string{"Dell Inc.", "PowerEdge R640"}}, "none"},
		{"qemu-dmi", vmEvidence{DMI: []string{"QEMU", "Standard PC (Q35 + ICH9, 2009)"}, HypervisorFlag: true}, "qemu"},
		{"ec2", vmEvidence{DMI: []string{"Amazon EC2", "m5.large"}, HypervisorFlag: true}, "amazon"},
		{"hyperv", vmEvidence{DMI: []string{"Microsoft Corporation", "Virtual Machine"}, HypervisorFlag: true}, "microsoft"},
		{"surface", vmEvidence{DMI: []string{"Microsoft Corporation", "Surface Pro"}}, "none"},
		{"gce", vmEvidence{DMI: []string{"Google", "Google Compute Engine"}, HypervisorFlag: true}, "google"},
		{"xen-sysfs", vmEvidence{HypervisorType: "xen\n"}, "xen"},
		{"arm-dt", vmEvidence{DeviceTreeHyper: "linux,kvm\x00"}, "kvm"},
		{"flag-kvmclock", vmEvidence{HypervisorFlag: true, Clocksources: "kvm-clock tsc acpi_pm"}, "kvm"},
		{"flag-only", vmEvidence{HypervisorFlag: true, Clocksources: "tsc"}, "vm"},
	}
	for _, tt := range tests {
		t.Run("case="+tt.name, func(t *testing.T) {
			if got := detectVM(tt.e); got != tt.want {
				t.Fatalf("detectVM = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDetectContainer(t *testing.T) {
	tests := []struct {
		name string
		e    containerEvidence
		want string
	}{
		{"none", containerEvidence{Cgroup: "0::/user.slice/user-1000.slice/session-2.scope\n"}, "none"},
		{"systemd-nspawn", containerEvidence{SystemdContainer: "systemd-nspawn\n", DockerEnv: true}, "systemd-nspawn"},
		{"environ", containerEvidence{Init1Environ: "PATH=/bin\x00container=lxc\x00"}, "lxc"},
		{"podman", containerEvidence{ContainerEnv: true}, "podman"},
		{"dockerenv", containerEvidence{DockerEnv: true}, "docker"},
		{"k8s", containerEvidence{Cgroup: "0::/kubepods/burstable/pod1/abc\n"}, "kubernetes"},
		{"docker-cgroup-v1", containerEvidence{Cgroup: "4:memory:/docker/0123abcd\n"}, "docker"},
	}
	for _, tt := range tests {
		t.Run("case="+tt.name, func(t *testing.T) {
			if got := detectContainer(tt.e); got != tt.want {
				t.Fatalf("detectContainer = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCgroup(t *testing.T) {
	v2, v1 := parseCgroup("12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/system.slice/lab.service\n")
	if v2 != "/system.slice/lab.service" || v1 != "/docker/abc" {
		t.Fatalf("parseCgroup = %q, %q", v2, v1)
	}
	v2, v1 = parseCgroup("0::/\n")
	if v2 != "/" || v1 != "" {
		t.Fatalf("parseCgroup(v2 only) = %q, %q", v2, v1)
	}
}

const mountinfoHybrid = `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestParseMountinfo(t *testing.T) {
	v2, v1 := parseMountinfo(mountinfoHybrid)
	if v2 == nil || *v2 != (mount{"/", "/sys/fs/cgroup/unified"}) {
		t.Fatalf("cgroup2 mount = %+v", v2)
	}
	if v1 == nil || *v1 != (mount{"/", "/sys/fs/cgroup/cpu"}) {
		t.Fatalf("cgroup v1 cpu mount = %+v", v1)
	}
	v2, _ = parseMountinfo(`25 20 0:22 /lab /mnt/my\040cgroup rw - cgroup2 cgroup2 rw` + "\n")
	if v2 == nil || *v2 != (mount{"/lab", "/mnt/my cgroup"}) {
		t.Fatalf("escaped cgroup2 mount = %+v", v2)
	}
}

func TestParseQuota(t *testing.T) {
	for text, want := range map[string]float64{"max 100000": 0, "150000 100000\n": 1.5, "50000": 0.5} {
		if got, err := parseCPUMax(text); err != nil || got != want {
			t.Errorf("parseCPUMax(%q) = %v, %v; want %v", text, got, err, want)
		}
	}
	for _, bad := range []string{"", "x 100000", "1 2 3", "100 0"} {
		if _, err := parseCPUMax(bad); err == nil {
			t.Errorf("parseCPUMax(%q) = nil error, want one", bad)
		}
	}
	if got, err := parseCFS("-1", "100000"); err != nil || got != 0 {
		t.Errorf("parseCFS(-1) = %v, %v; want 0", got, err)
	}
	if got, err := parseCFS("200000\n", "100000\n"); err != nil || got != 2 {
		t.Errorf("parseCFS(200000) = %v, %v; want 2", got, err)
	}
}

const procStat = `cpu  14309 10 12814 19923 123 5 50 700 0 0
cpu0 7083 0 6379 10108 28 0 14 350 0 0
cpu1 7226 10 6435 9815 95 5 36 350 0 0
intr 123 0
ctxt 456
`

func TestParseProcStat(t *testing.T) {
	got, err := parseProcStat(procStat)
	want := cpuTimes{Total: 14309 + 10 + 12814 + 19923 + 123 + 5 + 50 + 700, Idle: 19923 + 123, Steal: 700, CPUs: 2}
	if err != nil || got != want {
		t.Fatalf("parseProcStat = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"", "cpu 1 2 3\n", "cpu 1 2 3 4 5 6 7 x\n"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) = nil error, want one", bad)
		}
	}
}

func TestParseLoadavg(t *testing.T) {
	if got, err := parseLoadavg("16.22 5.19 1.85 7/205 8899\n"); err != nil || got != 16.22 {
		t.Fatalf("parseLoadavg = %v, %v; want 16.22", got, err)
	}
	if _, err := parseLoadavg("1.0"); err == nil {
		t.Fatal("parseLoadavg(short) = nil error, want one")
	}
}
