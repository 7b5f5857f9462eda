//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"ipcplay/cmd/ipcplay/internal/base"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ipcplay/ipc"
)

func TestRPCUsageErrors(t *testing.T) {
	t.Setenv("IPCPLAY_KEY", "a key long enough for the test")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rpc"}, "missing subcommand"},
		{[]string{"rpc", "listen"}, `unknown subcommand "listen"`},
		{[]string{"rpc", "serve"}, "--socket is required"},
		{[]string{"rpc", "call", "--socket", "/nonexistent/s"}, "want a METHOD"},
		{[]string{"rpc", "call", "add", "1"}, "--socket is required"},
		{[]string{"rpc", "call", "--key", "k", "add"}, "flag provided but not defined: -key"},
		{[]string{"manager", "--procs", "0"}, "--procs 0: want 1..64"},
		{[]string{"manager", "--ops", "0"}, "--ops 0: want 1..10000000"},
		{[]string{"manager", "--mode", "threads"}, `--mode "threads"`},
		{[]string{"manager", "--procs", "64", "--ops", "10000000"}, "shm mode holds at most"},
		{[]string{"manager", "extra"}, `unexpected argument "extra"`},
	} {
		code, stdout, stderr := runHere(t, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	t.Setenv("IPCPLAY_KEY", "")
	if code, _, stderr := runHere(t, "rpc", "call", "--socket", "/nonexistent/s", "add"); code != 2 || !strings.Contains(stderr, "no key") {
		t.Errorf("call with no key: exit %d, %q", code, stderr)
	}
}

func TestRPCServeCall(t *testing.T) {
	key := "a key long enough for the test"
	t.Setenv("IPCPLAY_KEY", key)
	dir, err := ipc.PrivateDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "demo.sock")

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- program().Main(sctx, base.TestEnv(&out, &errOut), []string{"rpc", "serve", "--socket", sock})
	}()
	defer func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d: %s", code, errOut.String())
		}
	}()
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the server never listened")
		}
		time.Sleep(5 * time.Millisecond)
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
		{[]string{"add", "x"}, 1, "", "bad-args"},
	} {
		args := append([]string{"rpc", "call", "--socket", sock}, tc.args...)
		code, stdout, stderr := runHere(t, args...)
		if code != tc.code || stdout != tc.out || !strings.Contains(stderr, tc.inErr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout, stderr, tc.code, tc.out, tc.inErr)
		}
	}
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("the wrong key, long enough\n"), 0o600)
	code, _, stderr := runHere(t, "rpc", "call", "--socket", sock, "--key-file", keyFile, "add", "1")
	if code != 1 || !strings.Contains(stderr, "rejected") {
		t.Errorf("call with a wrong key: exit %d, %q", code, stderr)
	}
}

func TestManagerTable(t *testing.T) {
	code, stdout, stderr := runHere(t, "manager", "--procs", "2", "--ops", "200")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"rpc ", "shm ", "goroutines ", "ok", "verdict: the state checked out every way", "futex mutex"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestManagerJSON(t *testing.T) {
	code, stdout, stderr := runHere(t, "manager", "--procs", "3", "--ops", "100", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		SchemaVersion int `json:"schema_version"`
		Procs, Ops    int
		Results       []struct {
			Mode       string  `json:"mode"`
			Ops        int     `json:"ops"`
			RoundTrips int     `json:"round_trips"`
			NsPerOp    float64 `json:"ns_per_op"`
			StateOK    bool    `json:"state_ok"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
	}
	if doc.SchemaVersion != 1 || doc.Procs != 3 || doc.Ops != 100 || len(doc.Results) != 3 {
		t.Fatalf("document = %+v", doc)
	}
	for _, r := range doc.Results {
		if !r.StateOK || r.Ops != 300 || r.NsPerOp <= 0 || (r.Mode == "rpc") != (r.RoundTrips == 600) {
			t.Errorf("result %+v", r)
		}
	}
}
