package rpclab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"ipcplay/ipc"
	"ipcplay/procs"
)

func TestManager(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cfg := ManagerConfig{Procs: 3, Ops: 200}
	res, err := RunManager(ctx, cfg, []string{ModeRPC, ModeShm, ModeGoroutines})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("%d results, want 3", len(res))
	}
	// Ops and Calls are read from the final state: the work the server
	// (or the region) saw done, 600 appends and 600 increments.
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Mode, r.Err)
		}
		if r.Ops != 600 || r.Calls != 1200 {
			t.Errorf("%s: %d ops and %d calls done, want 600 and 1200", r.Mode, r.Ops, r.Calls)
		}
		t.Logf("%s: %.0f ns/op, setup %v", r.Mode, r.NsPerOp(), r.Setup)
	}
	if kids, _ := procs.Children(os.Getpid()); len(kids) > 0 {
		t.Errorf("children left: %v", kids)
	}
}

func TestCheck(t *testing.T) {
	cfg := ManagerConfig{Procs: 2, Ops: 2}
	good := Snapshot{List: []int64{0, 2, 1, 3}, Dict: map[string]int64{totalKey: 4}}
	if err := Check(good, cfg); err != nil {
		t.Fatalf("good state: %v", err)
	}
	for name, snap := range map[string]Snapshot{
		"lost":      {List: []int64{0, 2, 3}, Dict: map[string]int64{totalKey: 4}},
		"duplicate": {List: []int64{0, 0, 2, 3}, Dict: map[string]int64{totalKey: 4}},
		"reordered": {List: []int64{1, 0, 2, 3}, Dict: map[string]int64{totalKey: 4}},
		"foreign":   {List: []int64{0, 1, 2, 9}, Dict: map[string]int64{totalKey: 4}},
		"count":     {List: []int64{0, 1, 2, 3}, Dict: map[string]int64{totalKey: 3}},
	} {
		if err := Check(snap, cfg); err == nil {
			t.Errorf("%s: Check passed a broken state", name)
		}
	}
}

func TestParseArgs(t *testing.T) {
	got := ParseArgs([]string{"2", "-3", "1.5", "hello", `"quoted"`, "[1,2]", `{"a":1}`, "true", "null", "1e3x"})
	want := []any{int64(2), int64(-3), 1.5, "hello", "quoted", []any{int64(1), int64(2)}, map[string]any{"a": int64(1)}, true, nil, "1e3x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseArgs = %#v, want %#v", got, want)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "key")
	os.WriteFile(good, []byte("a key that is long enough\n"), 0o600)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("a key that is long enough\n"), 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("short"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	newline := filepath.Join(dir, "newline")
	os.WriteFile(newline, []byte("\n"), 0o600)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, maxKeyFile+1), 0o600)

	if k, err := LoadKey(good); err != nil || string(k) != "a key that is long enough" {
		t.Errorf("LoadKey(good) = %q, %v", k, err)
	}
	if _, err := LoadKey(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadKey of a 0644 file: %v", err)
	}
	for file, want := range map[string]string{
		short:   "a key of 5 bytes, want at least 16",
		empty:   "key file " + empty + " is empty",
		newline: "key file " + newline + " is empty",
		big:     "over 4096 bytes",
	} {
		if _, err := LoadKey(file); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadKey(%s) = %v, want an error with %q", filepath.Base(file), err, want)
		}
	}
	t.Setenv(KeyEnv, "")
	if _, err := LoadKey(""); !errors.Is(err, ErrNoKey) {
		t.Errorf("LoadKey with nothing set: %v, want ErrNoKey", err)
	}
	t.Setenv(KeyEnv, "from the environment")
	if k, err := LoadKey(""); err != nil || string(k) != "from the environment" {
		t.Errorf("LoadKey from $%s = %q, %v", KeyEnv, k, err)
	}
}

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir, err := ipc.PrivateDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "demo.sock")
	key := []byte("demo key, long enough")
	ready := make(chan struct{})
	done := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() {
		done <- Serve(sctx, path, ipc.ServerConfig{Auth: ipc.AuthConfig{Key: key}}, func() { close(ready) })
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	<-ready
	for _, tc := range []struct {
		method string
		args   []string
		want   any
		code   string
	}{
		{"add", []string{"2", "3", "4"}, int64(9), ""},
		{"sub", []string{"2", "5"}, int64(-3), ""},
		{"div", []string{"7", "2"}, int64(3), ""},
		{"div", []string{"1", "0"}, nil, ipc.CodeError},
		{"sub", []string{"1"}, nil, ipc.CodeError},
		{"add", []string{"9223372036854775807", "1"}, nil, ipc.CodeError},
		{"add", []string{"x"}, nil, ipc.CodeBadArgs},
		{"sub", []string{"a", "b"}, nil, ipc.CodeBadArgs},
		{"echo", []string{"a", "1"}, []any{"a", int8(1)}, ""},
		{"mul", nil, nil, ipc.CodeUnknownMethod},
	} {
		got, err := Call(ctx, path, key, tc.method, ParseArgs(tc.args))
		if tc.code != "" {
			var re *ipc.RemoteError
			if !errors.As(err, &re) || re.Code != tc.code {
				t.Errorf("%s %v: %v, want a remote %s", tc.method, tc.args, err, tc.code)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(normalize(got), normalize(tc.want)) {
			t.Errorf("%s %v = %#v, %v; want %#v", tc.method, tc.args, got, err, tc.want)
		}
	}
	_, err = Call(ctx, path, key, "add", ParseArgs([]string{"a", "b"}))
	var bad *BadArgsError
	if !errors.As(err, &bad) || strings.Contains(err.Error(), "msgpack") ||
		err.Error() != `remote add: the server expected a list of integers (add N...), got ["a","b"]` {
		t.Errorf("add a b: %v, want a *BadArgsError that says what add takes", err)
	}
	if _, err := Call(ctx, path, []byte("the wrong key, long enough"), "add", nil); !errors.Is(err, ipc.ErrAuth) {
		t.Errorf("call with a wrong key: %v, want ErrAuth", err)
	}
}

// normalize turns every integer in v into int64: msgpack gives back the
// width that was on the wire.
func normalize(v any) any {
	switch v := v.(type) {
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		return int64(v)
	case []any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = normalize(v[i])
		}
		return out
	}
	return v
}
