package cost

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses, as a role could have.
	stat := "4242 (ipc (x) y) S 1 4242 4242 0 -1 4194560 123 0 0 0 37 12 0 0 20 0 5 0 100 1000 200 18446744073709551615\n"
	u, s, err := parseStat([]byte(stat))
	if err != nil || u != 370_000_000 || s != 120_000_000 {
		t.Fatalf("parseStat = %d, %d, %v; want 370000000, 120000000, nil", u, s, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 a 0"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) = nil error, want one", bad)
		}
	}
}

func TestParseStatusCS(t *testing.T) {
	status := "Name:\tcost.test\nState:\tS (sleeping)\nThreads:\t5\nvoluntary_ctxt_switches:\t152\nnonvoluntary_ctxt_switches:\t7\n"
	v, i, err := parseStatusCS([]byte(status))
	if err != nil || v != 152 || i != 7 {
		t.Fatalf("parseStatusCS = %d, %d, %v; want 152, 7, nil", v, i, err)
	}
	if _, _, err := parseStatusCS([]byte("Name:\tx\nvoluntary_ctxt_switches:\t1\n")); err == nil {
		t.Fatal("parseStatusCS without nonvoluntary = nil error, want one")
	}
}

func TestUsageSub(t *testing.T) {
	a := Usage{UserNS: 50, SysNS: 10, VolCS: 3, InvolCS: 1}
	b := Usage{UserNS: 20, SysNS: 20, VolCS: 1, InvolCS: 4}
	got := a.Sub(b)
	want := Usage{UserNS: 30, SysNS: 0, VolCS: 2, InvolCS: 0}
	if got != want {
		t.Fatalf("Sub = %+v, want %+v", got, want)
	}
	if got := a.Add(b); got != (Usage{70, 30, 4, 5}) {
		t.Fatalf("Add = %+v", got)
	}
}

func TestDominant(t *testing.T) {
	tests := []struct {
		name string
		s    Sample
		n    uint64
		want string
	}{
		{"kernel", Sample{Syscalls: 200, SyscallMethod: MethodTracepoint, Usage: Usage{UserNS: 290, SysNS: 710}}, 10000,
			"71% of CPU in the kernel; 0.02 system calls per message (one per 50)"},
		{"user", Sample{Syscalls: 30000, SyscallMethod: MethodTracepoint, Usage: Usage{UserNS: 900, SysNS: 100, VolCS: 5000}}, 10000,
			"90% of CPU in user space; 3 system calls per message; 0.5 context switches per message"},
		{"codec", Sample{Syscalls: 10, SyscallMethod: MethodTracepoint, Usage: Usage{UserNS: 8e6, SysNS: 2e6}, CodecNS: 5e6}, 10000,
			"80% of CPU in user space, most of it encoding and decoding (500 ns per message); 0.001 system calls per message (one per 1000)"},
		{"by-name", Sample{Syscalls: 1000, SyscallMethod: MethodTracepoint, ByName: map[string]uint64{"futex": 610, "write": 300}, Usage: Usage{UserNS: 1, SysNS: 3}}, 1000,
			"75% of CPU in the kernel; 1 system call per message, mostly futex (61%)"},
		{"by-name-spread", Sample{Syscalls: 1000, SyscallMethod: MethodTracepoint, ByName: map[string]uint64{"futex": 400}, Usage: Usage{UserNS: 1, SysNS: 3}}, 1000,
			"75% of CPU in the kernel; 1 system call per message"},
		{"unavailable", Sample{SyscallMethod: "unavailable: tracefs not mounted", Usage: Usage{SysNS: 1}}, 1,
			"100% of CPU in the kernel; system calls not counted (tracefs not mounted)"},
		{"no cpu", Sample{SyscallMethod: MethodTracepoint, Syscalls: 12}, 4,
			"no CPU time measured (the window is shorter than the kernel's accounting tick); 3 system calls per message"},
		{"no messages", Sample{SyscallMethod: MethodTracepoint}, 0, "no messages: no cost per message"},
	}
	for _, tt := range tests {
		t.Run("case="+tt.name, func(t *testing.T) {
			if got := tt.s.Per(tt.n).Dominant(); got != tt.want {
				t.Fatalf("Dominant() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestJSONNames(t *testing.T) {
	b, err := json.Marshal(Sample{Procs: []Proc{{PID: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"syscalls"`, `"syscall_method"`, `"user_ns"`, `"sys_ns"`, `"vol_cs"`, `"invol_cs"`, `"wall_ns"`, `"counter_ns"`, `"procs":[{"pid":1`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	if _, err = json.Marshal(Sample{Syscalls: 1}.Per(0)); err != nil {
		t.Fatalf("Per(0) does not marshal: %v", err)
	}
}

func TestNum(t *testing.T) {
	for x, want := range map[float64]string{0: "0", 0.02: "0.02", 1.5: "1.5", 12.34: "12.3", 1234.5: "1234", 0.00001: "<0.0001"} {
		if got := Num(x); got != want {
			t.Errorf("Num(%v) = %q, want %q", x, got, want)
		}
	}
}

func ExampleSample_Per() {
	s := Sample{
		Syscalls:      400,
		SyscallMethod: MethodTracepoint,
		Usage:         Usage{UserNS: 3_000_000, SysNS: 7_000_000, VolCS: 100},
		Bytes:         20000 * 64,
	}
	b := s.Per(20000)
	fmt.Printf("%.0f B, %.0f ns in the kernel per message\n", b.Bytes, b.SysNS)
	fmt.Println(b.Dominant())
	// Output:
	// 64 B, 350 ns in the kernel per message
	// 70% of CPU in the kernel; 0.02 system calls per message (one per 50)
}
