package base

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true}, {"64K", 64 << 10, true}, {"64KiB", 64 << 10, true},
		{"1.5M", 3 << 19, true}, {"1G", 1 << 30, true}, {"1GiB", 1 << 30, true},
		{"1TiB", 1 << 40, true}, {"2kb", 2000, true}, {"0", 0, true}, {"7B", 7, true},
		{"", 0, false}, {"-1", 0, false}, {"1e3", 0, false}, {"K", 0, false},
		{"0x10", 0, false}, {"9999999T", 0, false}, {"inf", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{65536: "64KiB", 65537: "65,537B", 1 << 20: "1MiB", 0: "0B", 1536: "1,536B"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"primes", "pipes", "shm", "queue", "factor", "rpc", "manager", "doctor"}
	for word, want := range map[string]string{
		"prime": "primes", "pipse": "pipes", "queu": "queue", "factr": "factor",
		"bogus": "", "x": "", "managre": "manager",
	} {
		if got := Suggest(word, cands); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", word, got, want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	newFS := func() (*flag.FlagSet, *int, *bool, *time.Duration, *Mode) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		n := IntFlag(fs, "procs", 4, 1, 64, "workers")
		b := fs.Bool("json", false, "json")
		d := DurationFlag(fs, "timeout", time.Second, time.Millisecond, time.Minute, "timeout")
		m := ModeFlag(fs, Both)
		return fs, n, b, d, m
	}
	fs, n, b, d, m := newFS()
	pos, err := ParseFlags(fs, []string{"91", "--procs", "2", "-json", "--timeout=2s", "-5", "--mode", "procs", "--", "--x"})
	if err != nil {
		t.Fatal(err)
	}
	if *n != 2 || !*b || *d != 2*time.Second || *m != Procs || strings.Join(pos, " ") != "91 -5 --x" {
		t.Errorf("parsed procs=%d json=%v timeout=%v mode=%s pos=%q", *n, *b, *d, *m, pos)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "unknown flag --bogus"},
		{[]string{"--proc", "2"}, `did you mean --procs?`},
		{[]string{"--procs", "0"}, "--procs 0: want a whole number from 1 to 64"},
		{[]string{"--procs"}, "flag --procs needs a value"},
		{[]string{"--timeout", "1"}, "--timeout 1: want a duration with a unit, such as 1s or 1ms"},
		{[]string{"--mode", "processes"}, `want procs, goroutines or both`},
	} {
		fs, _, _, _, _ := newFS()
		_, err := ParseFlags(fs, tc.args)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFlags(%q) = %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	fs, _, _, _, _ = newFS()
	if _, err := ParseFlags(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("ParseFlags(-h) = %v, want flag.ErrHelp", err)
	}
}

func testProgram() *Program {
	ran := &Command{UsageLine: "sub [flags]", Short: "a subcommand", Long: "Runs.\n\n  ipcplay lab sub"}
	ran.Flag.Bool("json", false, "json")
	ran.Run = func(ctx context.Context, env *Env, args []string) error {
		if len(args) > 0 && args[0] == "bad" {
			return Usagef("bad argument %q", args[0])
		}
		return nil
	}
	lab := &Command{UsageLine: "lab <subcommand>", Short: "a lab", Long: "A lab.", Commands: []*Command{ran}}
	return &Program{Name: "ipcplay", Short: "labs", Commands: []*Command{lab}, Version: func() string { return "ipcplay v0" }}
}

func TestProgramMain(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		out, err   string
		noOutOrErr bool
	}{
		{args: nil, code: 2, err: "usage: ipcplay"},
		{args: []string{"help"}, code: 0, out: "commands:"},
		{args: []string{"help", "-h"}, code: 0, out: "commands:"},
		{args: []string{"help", "help"}, code: 0, out: "commands:"},
		{args: []string{"--help", "help"}, code: 0, out: "commands:"},
		{args: []string{"--version"}, code: 0, out: "ipcplay v0"},
		{args: []string{"version"}, code: 0, out: "ipcplay v0"},
		{args: []string{"help", "lab", "sub"}, code: 0, out: "usage: ipcplay lab sub [flags]"},
		{args: []string{"lab", "sub", "-h"}, code: 0, out: "  --json"},
		{args: []string{"lab", "help"}, code: 0, out: "subcommands:"},
		{args: []string{"lab"}, code: 2, err: "missing subcommand: want sub"},
		{args: []string{"lba"}, code: 2, err: `did you mean "lab"?`},
		{args: []string{"lab", "sbu"}, code: 2, err: `unknown subcommand "sbu"; did you mean "sub"?`},
		{args: []string{"lab", "sub", "bad"}, code: 2, err: `ipcplay lab sub: bad argument "bad"`},
		{args: []string{"lab", "sub", "--nope"}, code: 2, err: "unknown flag --nope"},
		{args: []string{"lab", "sub", "x"}, code: 0},
		{args: []string{"lab", "sub", "help"}, code: 0, out: "usage: ipcplay lab sub [flags]"},
	} {
		var out, errb bytes.Buffer
		code := testProgram().Main(context.Background(), TestEnv(&out, &errb), tc.args)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("Main(%q) = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.err)
		}
		for _, s := range []string{out.String(), errb.String()} {
			if s != "" && !strings.HasSuffix(s, "\n") {
				t.Errorf("Main(%q): output does not end in a newline: %q", tc.args, s)
			}
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if len([]rune(l)) > DefaultWidth {
				t.Errorf("Main(%q): line wider than %d: %q", tc.args, DefaultWidth, l)
			}
		}
	}
}

func TestInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	if _, ok := Interrupted(ctx); ok {
		t.Fatal("Interrupted before cancel")
	}
	cancel(&Interrupt{Signal: 2})
	if sig, ok := Interrupted(ctx); !ok || sig != 2 {
		t.Errorf("Interrupted = %v, %v; want SIGINT, true", sig, ok)
	}
}

func TestWrap(t *testing.T) {
	text := strings.Repeat("word ", 50)
	for _, l := range Wrap(text, 30) {
		if len(l) > 30 {
			t.Errorf("Wrap: line of %d > 30: %q", len(l), l)
		}
	}
}

func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash:", err)
	}
	var script bytes.Buffer
	if code := testProgram().Main(context.Background(), TestEnv(&script, io.Discard), []string{"completion", "bash"}); code != 0 {
		t.Fatalf("completion bash exited %d", code)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for line, want := range map[string]string{
		"ipcplay l":           "lab",
		"ipcplay lab s":       "sub",
		"ipcplay lab sub --j": "--json",
	} {
		words := strings.Fields(line)
		probe := script.String() + fmt.Sprintf("\nCOMP_WORDS=(%s); COMP_CWORD=%d; _ipcplay; echo \"${COMPREPLY[*]}\"\n", line, len(words)-1)
		out, err := exec.CommandContext(ctx, bash, "--norc", "-c", probe).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("complete %q = %q, %v; want %q", line, out, err, want)
		}
	}
	if code := testProgram().Main(context.Background(), TestEnv(io.Discard, io.Discard), []string{"completion", "tcsh"}); code != 2 {
		t.Errorf("completion tcsh exited %d, want 2", code)
	}
}

func TestMan(t *testing.T) {
	var out bytes.Buffer
	if code := testProgram().Main(context.Background(), TestEnv(&out, io.Discard), []string{"man"}); code != 0 {
		t.Fatalf("man exited %d", code)
	}
	for _, want := range []string{".TH IPCPLAY 1", ".SS ipcplay lab sub [flags]", `\-\-json`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("man page lacks %q", want)
		}
	}
}

func TestInterruptedRunExits130(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	lab := &Command{UsageLine: "lab", Long: "A lab.\n\n  ipcplay lab", Run: func(context.Context, *Env, []string) error {
		cancel(&Interrupt{Signal: syscall.SIGINT}) // Ctrl-C while it runs
		return nil                                 // and it ends as if all went well
	}}
	var out, errb bytes.Buffer
	p := &Program{Name: "ipcplay", Commands: []*Command{lab}}
	if code := p.Main(ctx, TestEnv(&out, &errb), []string{"lab"}); code != 130 || !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("a lab interrupted yet returning nil: exit %d, stderr %q; want 130 and the interruption", code, errb.String())
	}
}
