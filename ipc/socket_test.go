package ipc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"ipcplay/procs"
)

// privatePath returns a socket path in a fresh private directory removed
// at cleanup.
func privatePath(t *testing.T) string {
	t.Helper()
	dir, err := PrivateDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

// TestListenReplaceStale kills a server with SIGKILL, which leaves its
// socket file: Listen then fails with "address already in use", as for a
// live server, while ListenReplace replaces the stale file.
func TestListenReplaceStale(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	path := privatePath(t)
	ln, err := Listen(Stream, path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.File()
	ln.SetUnlinkOnClose(false) // the child owns it now
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := procs.Command(ctx, rpcServerRole)
	cmd.ExtraFiles = []*os.File{f}
	stdin, stdinW, err := os.Pipe() // the child serves until its stdin closes
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	cmd.Stdin = stdin
	if err := cmd.Start(); err != nil {
		stdin.Close()
		t.Fatal(err)
	}
	stdin.Close()
	f.Close()
	waited := false
	defer func() {
		if !waited {
			cmd.Process().Kill()
			cmd.Wait()
		}
	}()
	// Make sure it serves, then kill it.
	cl := dialClient(t, ctx, path)
	var s string
	if err := cl.Call(ctx, "echo", "up", &s); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process().Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waited = true
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("socket file after SIGKILL: %v, want it left behind", err)
	}
	if ln, err := Listen(Stream, path); err == nil {
		ln.Close()
		t.Fatal("Listen over a stale socket file succeeded: the test's premise is gone")
	}
	ln, err = ListenReplace(Stream, path)
	if err != nil {
		t.Fatalf("ListenReplace over a stale socket file: %v", err)
	}
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := Accept(ln)
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := Dial(ctx, Stream, path)
	if err != nil {
		t.Fatalf("dial the replacing listener: %v", err)
	}
	c.Close()
	if err := await(t, "accept on the replacing listener", accepted); err != nil {
		t.Fatal(err)
	}
}

// TestListenReplaceLive: a live server's socket is left alone, with an
// error that says a server is running.
func TestListenReplaceLive(t *testing.T) {
	path := privatePath(t)
	live, err := Listen(Stream, path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	ln, err := ListenReplace(Stream, path)
	if err == nil {
		ln.Close()
		t.Fatal("ListenReplace over a live server succeeded")
	}
	if !errors.Is(err, ErrServerRunning) {
		t.Fatalf("ListenReplace over a live server = %v, want ErrServerRunning", err)
	}
	t.Logf("live: %v", err)
	c, err := Dial(t.Context(), Stream, path)
	if err != nil {
		t.Fatalf("the live server's socket after ListenReplace: %v", err)
	}
	c.Close()
}

// TestListenReplaceNotSocket: a file that is not a socket is never
// removed.
func TestListenReplaceNotSocket(t *testing.T) {
	path := privatePath(t)
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ln, err := ListenReplace(Stream, path); err == nil {
		ln.Close()
		t.Fatal("ListenReplace over a regular file succeeded")
	} else {
		t.Logf("regular file: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Fatalf("the regular file after ListenReplace: %q, %v", b, err)
	}
	// A fresh path is plain Listen.
	ln, err := ListenReplace(Stream, path+"2")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
