package ipc

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"ipcplay/procs"
)

const echoRole = "ipc-test-echo"

func TestMain(m *testing.M) {
	procs.Register(echoRole, echoMain)
	registerQueueRoles()
	procs.Register(RoleQueueRecovery, QueueRecoveryChild)
	procs.Init()
	os.Exit(m.Run())
}

type testMsg struct {
	//lint:ignore U1000 msgpack reads its tag
	_msgpack struct{} `msgpack:",as_array"`
	Seq      int64
	Body     string
}

// echoMain sends back every message it receives on the socket at
// procs.FDControl, flushing once per frame it read, until EOF.
func echoMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(echoRole, flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "control")
	if err != nil {
		return err
	}
	c, err := FileConn(f)
	if err != nil {
		return err
	}
	defer c.Close()
	var m testMsg
	for {
		if err := c.Recv(&m); err != nil {
			if err == io.EOF {
				return c.CloseWrite()
			}
			return fmt.Errorf("echo recv: %w", err)
		}
		if err := c.Send(&m); err != nil {
			return fmt.Errorf("echo send: %w", err)
		}
	}
}

// startEcho starts the echo child on a fresh socket pair.
func startEcho(t *testing.T, network Network) (*Conn, *procs.Cmd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	c, theirs, err := Pair(network)
	if err != nil {
		t.Fatal(err)
	}
	cmd := procs.Command(ctx, echoRole)
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	t.Cleanup(func() {
		c.Close()
		cmd.Wait()
	})
	return c, cmd
}

func TestEchoChild(t *testing.T) {
	for _, network := range []Network{Stream, SeqPacket} {
		for _, batch := range []bool{false, true} {
			t.Run(fmt.Sprintf("network=%s/batch=%v", network, batch), func(t *testing.T) {
				c, cmd := startEcho(t, network)
				const n = 2000
				done := make(chan error, 1)
				go func() {
					var m testMsg
					for i := range int64(n) {
						if err := c.Recv(&m); err != nil {
							done <- fmt.Errorf("recv %d: %w", i, err)
							return
						}
						if m.Seq != i || m.Body != fmt.Sprint("body-", i) {
							done <- fmt.Errorf("recv %d: got %+v", i, m)
							return
						}
					}
					done <- c.Recv(&m) // want io.EOF
				}()
				for i := range int64(n) {
					m := testMsg{Seq: i, Body: fmt.Sprint("body-", i)}
					var err error
					if batch {
						err = c.Buffer(&m)
					} else {
						err = c.Send(&m)
					}
					if err != nil {
						t.Fatalf("send %d: %v", i, err)
					}
				}
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != io.EOF {
					t.Fatalf("after %d echoes: %v, want io.EOF", n, err)
				}
				if err := cmd.Wait(); err != nil {
					t.Fatalf("echo child: %v", err)
				}
			})
		}
	}
}

func TestFrameTooLarge(t *testing.T) {
	for _, network := range []Network{Stream, SeqPacket} {
		t.Run("network="+string(network), func(t *testing.T) {
			a, bf, err := Pair(network)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := FileConn(bf)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			b.SetMaxFrame(100)
			if err := a.Send(testMsg{Body: string(make([]byte, 200))}); err != nil {
				t.Fatal(err)
			}
			var m testMsg
			err = b.Recv(&m)
			var fe *FrameError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFrameTooLarge) || fe.Max != 100 {
				t.Fatalf("Recv of a 200-byte frame with max 100: %v, want FrameError ErrFrameTooLarge", err)
			}
			// The sender's own limit refuses before writing.
			a.SetMaxFrame(10)
			if err := a.Send(testMsg{Body: "0123456789"}); !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("Send over the limit: %v, want ErrFrameTooLarge", err)
			}
		})
	}
}

// rawPair returns a Conn and the raw file of its peer, to write bytes that
// break the framing.
func rawPair(t *testing.T) (*Conn, *os.File) {
	t.Helper()
	c, f, err := Pair(Stream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); f.Close() })
	return c, f
}

func TestTruncatedAndHugeFrames(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"huge-length", binary.BigEndian.AppendUint32(nil, 0xffffffff), ErrFrameTooLarge},
		{"cut-body", append(binary.BigEndian.AppendUint32(nil, 100), 1, 2, 3), io.ErrUnexpectedEOF},
		{"cut-header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"clean-eof", nil, io.EOF},
	}
	for _, tc := range cases {
		t.Run("case="+tc.name, func(t *testing.T) {
			c, f := rawPair(t)
			if _, err := f.Write(tc.data); err != nil {
				t.Fatal(err)
			}
			f.Close()
			var v any
			err := c.Recv(&v)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Recv = %v, want %v", err, tc.want)
			}
			if cap(c.rbuf) > 1024 {
				t.Fatalf("Recv allocated a %d-byte buffer for a bad frame", cap(c.rbuf))
			}
		})
	}
}

func TestRecvContextDeadline(t *testing.T) {
	c, _ := rawPair(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	var v any
	err := c.RecvContext(ctx, &v)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RecvContext on a silent peer = %v, want context.DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithCancel(t.Context())
	go cancel2()
	if err := c.RecvContext(ctx2, &v); !errors.Is(err, context.Canceled) {
		t.Fatalf("RecvContext cancelled = %v, want context.Canceled", err)
	}
}

func TestListenPrivate(t *testing.T) {
	dir, err := PrivateDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := dir + "/s"
	ln, err := Listen(Stream, path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %#o, want 0600", perm)
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := Accept(ln)
		if err != nil {
			accepted <- err
			return
		}
		defer c.Close()
		var s string
		if err := c.Recv(&s); err != nil {
			accepted <- err
			return
		}
		accepted <- c.Send(s + "!")
	}()
	c, err := Dial(t.Context(), Stream, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Send("hi"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := c.Recv(&got); err != nil || got != "hi!" {
		t.Fatalf("Recv = %q, %v; want \"hi!\"", got, err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket file still there after Close: %v", err)
	}
	// A directory others can enter is refused.
	open := t.TempDir()
	os.Chmod(open, 0o755)
	if _, err := Listen(Stream, open+"/s"); err == nil {
		t.Fatal("Listen in a 0755 directory succeeded, want an error")
	}
}

func TestSendRecvAllocs(t *testing.T) {
	a, bf, err := Pair(Stream)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := FileConn(bf)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := int64(1) << 40
	var in int64
	allocs := testing.AllocsPerRun(1000, func() {
		if err := a.Send(&out); err != nil {
			t.Fatal(err)
		}
		if err := b.Recv(&in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || in != out {
		t.Errorf("Send+Recv of an int64: %.1f allocations, got %d; want 0 and %d", allocs, in, out)
	}
}
