package sysinfo

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// tree writes files (path relative to the root -> content) under a new
// directory and returns it as a root.
func tree(t *testing.T, files map[string]string) root {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root(dir)
}

func TestReadFixtureV2(t *testing.T) {
	r := tree(t, map[string]string{
		"proc/sys/kernel/osrelease":                            "6.1.0-18-amd64\n",
		"proc/cpuinfo":                                         cpuinfoX86,
		"sys/devices/system/cpu/online":                        "0-3\n",
		"sys/class/dmi/id/sys_vendor":                          "QEMU\n",
		"sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance\n",
		"sys/kernel/mm/transparent_hugepage/enabled":           "[always] madvise never\n",
		"proc/self/cgroup":                                     "0::/lab.slice/run\n",
		"proc/self/mountinfo":                                  "30 22 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
		"sys/fs/cgroup/lab.slice/run/cpu.max":                  "max 100000\n",
		"sys/fs/cgroup/lab.slice/cpu.max":                      "150000 100000\n",
		"run/.containerenv":                                    "",
	})
	s := read(r)
	want := System{
		Kernel: "6.1.0-18-amd64", Arch: runtime.GOARCH, CPUModel: "AMD EPYC 7B13 64-Core Processor",
		CPUs: 4, UsableCPUs: runtime.NumCPU(), Virtualization: "qemu", Container: "podman",
		Governor: "performance", THP: "always", CPUQuota: 1.5,
		CPUQuotaSource: "cgroup v2 cpu.max 150000 100000 at /sys/fs/cgroup/lab.slice",
		GoVersion:      runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	if s != want {
		t.Fatalf("read =\n%+v\nwant\n%+v", s, want)
	}
}

func TestReadFixtureV1(t *testing.T) {
	r := tree(t, map[string]string{
		"proc/cpuinfo":        cpuinfoMetal,
		"proc/self/cgroup":    "3:cpu,cpuacct:/docker/abc\n0::/\n",
		"proc/self/mountinfo": mountinfoHybrid,
		"sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us":  "50000\n",
		"sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us": "100000\n",
		"sys/fs/cgroup/cpu/cpu.cfs_quota_us":             "-1\n",
		"sys/fs/cgroup/cpu/cpu.cfs_period_us":            "100000\n",
	})
	s := read(r)
	if s.CPUQuota != 0.5 || !strings.HasPrefix(s.CPUQuotaSource, "cgroup v1 cpu.cfs_quota_us 50000") {
		t.Errorf("quota = %v from %q, want 0.5 from cgroup v1", s.CPUQuota, s.CPUQuotaSource)
	}
	if s.Kernel != "unknown" || s.Governor != "none" || s.THP != "unknown" || s.Virtualization != "none" || s.Container != "docker" || s.CPUs != 0 {
		t.Errorf("missing files read as %+v; want unknown kernel and THP, governor none, no VM, docker, 0 CPUs", s)
	}
	if s := read(tree(t, nil)); s.CPUQuotaSource != "no cgroup cpu controller found" {
		t.Errorf("empty tree: quota source %q", s.CPUQuotaSource)
	}
}

func TestReadLive(t *testing.T) {
	s := Read()
	t.Log(s.Summary())
	if s.Kernel == "unknown" || s.CPUs < 1 || s.CPUModel == "unknown" || s.GoVersion != runtime.Version() {
		t.Fatalf("Read() = %+v: want a kernel, a CPU model, CPUs and this Go version", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"kernel"`, `"cpu_model"`, `"cpus"`, `"virtualization"`, `"cpu_governor"`, `"transparent_hugepages"`, `"cgroup_cpu_quota"`, `"go_version"`, `"gomaxprocs"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
}

func TestSummary(t *testing.T) {
	s := System{Kernel: "6.1.0", Arch: "amd64", CPUModel: "AMD EPYC", CPUs: 2, UsableCPUs: 2, Virtualization: "kvm",
		Container: "none", Governor: "none", THP: "madvise", CPUQuota: 1.5, GoVersion: "go1.26.0", GOMAXPROCS: 2}
	want := "Linux 6.1.0 amd64, AMD EPYC x2 (kvm), governor none, THP madvise, CPU quota 1.5, go1.26.0 GOMAXPROCS=2"
	if got := s.Summary(); got != want {
		t.Fatalf("Summary() = %q, want %q", got, want)
	}
}

func ExampleRead() {
	s := Read()
	_ = s.Summary() // "Linux 6.18.44 amd64, AMD EPYC x2 (kvm, docker), governor none, ..."
}
