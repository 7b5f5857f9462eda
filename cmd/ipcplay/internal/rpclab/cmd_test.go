package rpclab

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/ipc"
)

func program() *base.Program {
	return &base.Program{Name: "ipcplay", Commands: []*base.Command{RPCCommand(), ManagerCommand()}}
}

// runCmd runs "ipcplay ARGS" in this process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return labtest.Run(t, program().Commands, args...)
}

func TestUsageErrors(t *testing.T) {
	t.Setenv(KeyEnv, "a key long enough for the test")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	long := "/tmp/" + strings.Repeat("x", 115) // 120 bytes
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rpc"}, "missing subcommand: want serve or call"},
		{[]string{"rpc", "listen"}, `unknown subcommand "listen"`},
		{[]string{"rpc", "serve"}, "--socket is required"},
		{[]string{"rpc", "serve", "--socket", long}, "socket path of 120 bytes: a Unix socket path holds at most 107 (sun_path"},
		{[]string{"rpc", "call", "--socket", long, "add"}, "at most 107"},
		{[]string{"rpc", "call", "--socket", "/nonexistent/s"}, "want a METHOD: add, sub, div, echo"},
		{[]string{"rpc", "call", "add", "1"}, "--socket is required"},
		{[]string{"rpc", "call", "--key", "k", "add"}, "unknown flag --key "},
		{[]string{"rpc", "call", "--socket", "/nonexistent/s", "--key-file", empty, "add"}, "key file " + empty + " is empty"},
		{[]string{"manager", "--procs", "0"}, "--procs 0: want a whole number from 1 to 64"},
		{[]string{"manager", "--ops", "0"}, "--ops 0: want a whole number from 1 to 10,000,000"},
		{[]string{"manager", "--ops", "9223372036854775807"}, "want a whole number from 1 to 10,000,000"},
		{[]string{"manager", "--mode", "all"}, "--mode all: want procs, goroutines or both"},
		{[]string{"manager", "--via", "pipe"}, "--via pipe: want rpc, shm or both"},
		{[]string{"manager", "--procs", "64", "--ops", "10000000"}, "the shared region holds at most"},
		{[]string{"manager", "extra"}, `unexpected argument "extra"`},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and one line with %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	t.Setenv(KeyEnv, "")
	if code, _, stderr := runCmd(t, "rpc", "call", "--socket", "/nonexistent/s", "add"); code != 2 || !strings.Contains(stderr, "no key") {
		t.Errorf("call with no key: exit %d, %q", code, stderr)
	}
}

// signalWriter is a goroutine-safe buffer that closes ready once what it
// holds contains want.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	ready chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.ready) })
	}
	return n, err
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestServeCall(t *testing.T) {
	t.Setenv(KeyEnv, "a key long enough for the test")
	dir, err := ipc.PrivateDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "demo.sock")

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// main cancels the context with a *base.Interrupt on Ctrl-C.
	sctx, interrupt := context.WithCancelCause(ctx)
	out := &signalWriter{want: "until interrupted\n", ready: make(chan struct{})}
	var errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- program().Main(sctx, &base.Env{Stdout: out, Stderr: &errOut, Width: 80},
			[]string{"rpc", "serve", "--socket", sock})
	}()
	select {
	case <-out.ready:
	case code := <-done:
		t.Fatalf("serve exited %d before listening: %s", code, errOut.String())
	case <-ctx.Done():
		t.Fatal("the server never listened")
	}
	for _, tc := range []struct {
		args       []string
		code       int
		out, inErr string
	}{
		{[]string{"add", "2", "3", "4"}, 0, "9\n", ""},
		{[]string{"sub", "2", "5"}, 0, "-3\n", ""},
		{[]string{"echo", "hi", `{"a":[1,2.5]}`}, 0, `["hi",{"a":[1,2.5]}]` + "\n", ""},
		{[]string{"div", "1", "0"}, 1, "", "remote div: division by zero"},
		{[]string{"mul", "1"}, 1, "", `no method "mul"`},
		{[]string{"add", "a", "b"}, 1, "", `remote add: the server expected a list of integers (add N...), got ["a","b"]`},
	} {
		args := append([]string{"rpc", "call", "--socket", sock}, tc.args...)
		code, stdout, stderr := runCmd(t, args...)
		if code != tc.code || stdout != tc.out || !strings.Contains(stderr, tc.inErr) || strings.Contains(stderr, "msgpack") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout, stderr, tc.code, tc.out, tc.inErr)
		}
	}
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("the wrong key, long enough\n"), 0o600)
	code, _, stderr := runCmd(t, "rpc", "call", "--socket", sock, "--key-file", keyFile, "add", "1")
	if code != 1 || !strings.Contains(stderr, "rejected") {
		t.Errorf("call with a wrong key: exit %d, %q", code, stderr)
	}

	interrupt(&base.Interrupt{Signal: syscall.SIGINT})
	if code := <-done; code != 130 || !strings.Contains(errOut.String(), "interrupted (Ctrl-C, SIGINT)") {
		t.Errorf("serve after Ctrl-C: exit %d, stderr %q; want 130 and the interruption", code, errOut.String())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("serve left its socket file: %v", err)
	}
}

func TestManagerCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, "manager", "--procs", "2", "--ops", "200")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, l := range strings.Split(stdout, "\n") {
		if n := len([]rune(l)); n > base.DefaultWidth {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
	for _, want := range []string{"MODE", "PER OP ns", "rpc", "shm", "sync.Mutex", "400",
		"verdict: the state checked out every way; worker processes calling a server"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCmd(t, "manager", "--procs", "3", "--ops", "100", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc, err := report.Validate([]byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid report: %v\n%s", err, stdout)
	}
	modes := doc.Table("modes")
	if modes == nil || len(modes.Rows) != 3 || len(doc.Verdict) == 0 {
		t.Fatalf("modes = %+v, verdict %q; want 3 rows and a verdict", modes, doc.Verdict)
	}
	for i := range modes.Rows {
		ops, _ := modes.Int(i, "ops")
		calls, _ := modes.Int(i, "calls")
		if !modes.Bool(i, "state_ok") || ops != 300 || calls != 600 {
			t.Errorf("%s via %s: ops %d, calls %d, state ok %v; want 300, 600, true",
				modes.String(i, "mode"), modes.String(i, "via"), ops, calls, modes.Bool(i, "state_ok"))
		}
		if _, ok := modes.Int(i, "per_op_ns"); !ok {
			t.Errorf("row %d: no per_op_ns", i)
		}
	}

	code, stdout, stderr = runCmd(t, "manager", "--mode", "procs", "--via", "shm", "--procs", "2", "--ops", "50")
	if code != 0 || strings.Contains(stdout, "sync.Mutex  ") || !strings.Contains(stdout, "verdict: the state checked out; sharing memory") {
		t.Errorf("--mode procs --via shm: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
}
