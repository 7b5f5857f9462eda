package pipes

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"ipcplay/procs"
	"ipcplay/shm"
)

// roleWriter writes -bytes bytes to stdout in -chunk sized writes,
// sleeping -sleep between them, and publishes the bytes written so far in
// slot 0 of the shared Int64Array it inherits at procs.FDShm.
const roleWriter = "pipes-test-writer"

func TestMain(m *testing.M) {
	procs.Register(roleWriter, writerMain)
	procs.Init()
	os.Exit(m.Run())
}

func writerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(roleWriter, flag.ContinueOnError)
	n := fs.Int("bytes", 0, "bytes to write")
	chunk := fs.Int("chunk", PipeBuf, "bytes per write")
	sleep := fs.Duration("sleep", 0, "pause between writes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "progress")
	if err != nil {
		return err
	}
	r, err := shm.Open(f, 8)
	if err != nil {
		f.Close()
		return err
	}
	defer r.Close()
	prog, err := r.Int64s(0, 1)
	if err != nil {
		return err
	}
	buf := bytes.Repeat([]byte{'x'}, *chunk)
	for done := 0; done < *n; {
		k, err := os.Stdout.Write(buf[:min(*chunk, *n-done)])
		done += k
		prog.Store(0, int64(done))
		if err != nil {
			return err
		}
		if *sleep > 0 {
			time.Sleep(*sleep)
		}
	}
	return nil
}

// child is a running roleWriter whose stdout is a pipe nobody reads yet.
type child struct {
	cmd    *procs.Cmd
	out    *os.File // the parent's read end
	region *shm.Region
	prog   *shm.Int64Array
	cancel context.CancelFunc
}

func startWriter(t *testing.T, args ...string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	region, err := shm.New("progress", 8)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	prog, err := region.Int64s(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := procs.Command(ctx, roleWriter, args...)
	cmd.Stdout = w
	cmd.ExtraFiles = []*os.File{nil, region.File()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	c := &child{cmd: cmd, out: r, region: region, prog: prog, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		r.Close()
		region.Close()
	})
	return c
}

func (c *child) progress() int64 { return c.prog.Load(0) }

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestMeasuredCapacityMatchesKernel(t *testing.T) {
	max, err := MaxSize()
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 4096, 128 << 10, min(1<<20, max)} {
		measured, reported, err := MeasureCapacity(size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if measured != reported || measured == 0 {
			t.Errorf("size %d: measured %d bytes, F_GETPIPE_SZ says %d", size, measured, reported)
		}
		if size > 0 && reported < size {
			t.Errorf("size %d: got a pipe of %d", size, reported)
		}
	}
}

func TestResize(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	got, err := Resize(w, 100000) // rounded up to a power of two pages
	if err != nil {
		t.Fatal(err)
	}
	c, err := Capacity(r)
	if err != nil {
		t.Fatal(err)
	}
	if got != c || got < 100000 {
		t.Errorf("Resize returned %d, Capacity says %d", got, c)
	}
	max, err := MaxSize()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Resize(w, max+1)
	var se *SizeError
	if !errors.As(err, &se) || se.Max != max || se.Requested != max+1 {
		t.Errorf("Resize over the max: got %v, want a *SizeError", err)
	}
	if c2, _ := Capacity(r); c2 != c {
		t.Errorf("a refused resize changed the capacity from %d to %d", c, c2)
	}
}

func TestBuffered(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if n, err := Buffered(r); err != nil || n != 0 {
		t.Fatalf("empty pipe: %d, %v", n, err)
	}
	w.Write(make([]byte, 1000))
	if n, err := Buffered(r); err != nil || n != 1000 {
		t.Fatalf("after 1000 bytes: %d, %v", n, err)
	}
	r.Read(make([]byte, 300))
	if n, err := Buffered(w); err != nil || n != 700 {
		t.Fatalf("after reading 300: %d, %v", n, err)
	}
}

func TestDrain(t *testing.T) {
	data := make([]byte, 300000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name  string
		limit int
		keep  Keep
		want  []byte
		err   bool
	}{
		{"head-all", len(data), KeepHead, data, false},
		{"head-cut", 1000, KeepHead, data[:1000], true},
		{"tail", 1000, KeepTail, data[len(data)-1000:], false},
		{"tail-odd", 65537, KeepTail, data[len(data)-65537:], false},
		{"tail-all", 1 << 20, KeepTail, data, false},
		{"none", 0, KeepTail, []byte{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			d := StartDrain(r, tc.limit, tc.keep)
			// Odd-sized writes so that reads straddle the ring's end.
			for p := data; len(p) > 0; {
				k := min(len(p), 9999)
				w.Write(p[:k])
				p = p[k:]
			}
			w.Close()
			got, total, err := d.Wait()
			if total != int64(len(data)) {
				t.Errorf("total %d, want %d", total, len(data))
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("kept %d bytes, not the %d wanted", len(got), len(tc.want))
			}
			var le *LimitError
			if tc.err != errors.As(err, &le) {
				t.Errorf("err = %v, want a *LimitError: %v", err, tc.err)
			}
		})
	}
}

func TestDrainReadError(t *testing.T) {
	d := StartDrain(io.MultiReader(strings.NewReader("abc"), errReader{}), 10, KeepHead)
	got, total, err := d.Wait()
	if string(got) != "abc" || total != 3 || err == nil {
		t.Errorf("got %q, %d, %v", got, total, err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestObserveBlockedChild(t *testing.T) {
	fds := openFDs(t)
	t.Run("child", func(t *testing.T) {
		c := startWriter(t, "-bytes", fmt.Sprint(1<<20))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var v Verdict
		for {
			var err error
			v, err = Observe(ctx, Watch{PID: c.cmd.Pid(), Pipe: c.out, Progress: c.progress, Window: 200 * time.Millisecond})
			if err != nil {
				t.Fatalf("no stall detected in time: %v (last: %+v)", err, v)
			}
			if v.Blocked {
				break
			}
		}
		ev := v.Evidence
		t.Logf("verdict: %s; evidence %+v", v.Reason, ev)
		if v.Reason != VerdictPipeFull || ev.State != "S" {
			t.Errorf("verdict %q, state %q", v.Reason, ev.State)
		}
		if ev.ProgressAfter != int64(ev.PipeCapacity) || ev.PipeBuffered != ev.PipeCapacity {
			t.Errorf("child wrote %d bytes, pipe holds %d of %d", ev.ProgressAfter, ev.PipeBuffered, ev.PipeCapacity)
		}
		c.cancel()
		if err := c.cmd.Wait(); err == nil {
			t.Error("the blocked child exited cleanly after being killed")
		}
		if kids, err := procs.Children(os.Getpid()); err != nil || len(kids) != 0 {
			t.Errorf("children left: %v, %v", kids, err)
		}
	})
	if got := openFDs(t); got != fds {
		t.Errorf("%d fds open before, %d after", fds, got)
	}
}

func TestObserveSlowChild(t *testing.T) {
	// A child that writes a little and sleeps: the pipe never fills, so
	// however long it sleeps, it is not blocked on the pipe.
	c := startWriter(t, "-bytes", "1000", "-chunk", "100", "-sleep", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 4; i++ {
		v, err := Observe(ctx, Watch{PID: c.cmd.Pid(), Pipe: c.out, Progress: c.progress, Window: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("verdict: %s", v.Reason)
		if v.Blocked {
			t.Fatalf("a slow child was reported blocked: %+v", v.Evidence)
		}
	}
	// A child that writes steadily into a pipe that someone drains.
	c2 := startWriter(t, "-bytes", fmt.Sprint(1<<20), "-sleep", "20ms")
	d := StartDrain(c2.out, 0, KeepTail)
	// From its first write on: a child still starting up (it took over
	// 300 ms under -race on a loaded machine) makes no progress in the
	// window, and the verdict was "no progress, but running".
	for c2.progress() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the drained writer never wrote")
		case <-time.After(time.Millisecond):
		}
	}
	// It must never be called blocked, and must be seen making progress:
	// on a loaded machine one window may pass without the writer being
	// scheduled ("no progress, but running"), so it gets windows until the
	// test's deadline, each of which must not say blocked.
	for {
		v, err := Observe(ctx, Watch{PID: c2.cmd.Pid(), Pipe: c2.out, Progress: c2.progress, Window: 300 * time.Millisecond})
		if err != nil {
			t.Fatalf("a drained writer, never seen making progress: %v", err)
		}
		if v.Blocked {
			t.Fatalf("a drained writer was reported blocked: %q", v.Reason)
		}
		if strings.HasPrefix(v.Reason, "making progress") {
			break
		}
		if v.Evidence.Gone {
			t.Fatalf("a drained writer ended before it was seen making progress")
		}
		t.Logf("a drained writer: %q", v.Reason)
	}
	c2.cancel()
	c2.cmd.Wait()
	d.Wait()
}

func TestJudgeNeedsAllTheEvidence(t *testing.T) {
	full := Evidence{State: "S", Wchan: "pipe_write", SyscallNr: 1, PipeBuffered: 65536, PipeCapacity: 65536,
		ProgressKnown: true, ProgressBefore: 65536, ProgressAfter: 65536}
	if v := judge(full, false); !v.Blocked {
		t.Fatalf("full evidence: %q", v.Reason)
	}
	for name, mod := range map[string]func(*Evidence){
		"progress":   func(e *Evidence) { e.ProgressAfter++ },
		"unknown":    func(e *Evidence) { e.ProgressKnown = false },
		"state":      func(e *Evidence) { e.State = "D" },
		"not full":   func(e *Evidence) { e.PipeBuffered = 100 },
		"elsewhere":  func(e *Evidence) { e.Wchan, e.SyscallNr = "hrtimer_nanosleep", 230 },
		"gone":       func(e *Evidence) { e.Gone = true },
		"no pipe":    func(e *Evidence) { e.PipeCapacity = 0 },
		"unreadable": func(e *Evidence) { e.Wchan, e.SyscallNr, e.SyscallErr = "0", -1, "permission denied" },
	} {
		e := full
		mod(&e)
		if v := judge(e, false); v.Blocked {
			t.Errorf("%s: blocked with %+v", name, e)
		}
	}
	if v := judge(full, true); v.Blocked {
		t.Error("blocked although seen running")
	}
}

func TestParse(t *testing.T) {
	st, err := ParseState("123 (a) b) (c) S 1 2 3")
	if err != nil || st != "S" {
		t.Errorf("ParseState: %q, %v", st, err)
	}
	if _, err := ParseState("garbage"); err == nil {
		t.Error("ParseState accepted garbage")
	}
	for in, want := range map[string]int{"1 0x1 0x2": 1, "running": -1, "-1 0x7ff 0x0": -1, "": -1, "64 0x1": 64} {
		if got := ParseSyscallNr(in); got != want {
			t.Errorf("ParseSyscallNr(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestObserveExitedChild(t *testing.T) {
	c := startWriter(t, "-bytes", "10")
	if err := c.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := Observe(ctx, Watch{PID: c.cmd.Pid(), Pipe: c.out, Progress: c.progress, Window: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if v.Blocked || !v.Evidence.Gone || v.Evidence.PipeBuffered != 10 {
		t.Errorf("exited child: %q, %+v", v.Reason, v.Evidence)
	}
}
