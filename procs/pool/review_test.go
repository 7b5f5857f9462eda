package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// Roles of the review's tests (issue 15's pool review).
const (
	roleSlow = "pool-test-slow"
	roleGrow = "pool-test-grow" // returns a string of the task's length
)

func init() {
	procs.Register(roleSlow, WorkerMain(Typed(func(ctx context.Context, t slowTask) (int, error) {
		time.Sleep(time.Duration(t.Run))
		return t.N, nil
	})))
	procs.Register(roleGrow, WorkerMain(Typed(func(ctx context.Context, n int) (string, error) {
		return strings.Repeat("y", n), nil
	})))
}

// slowTask runs for Run and takes Decode to decode in the worker (a large
// task, a GC pause, a descheduled process).
type slowTask struct {
	N           int
	Run, Decode int64 // ns
}

func (s slowTask) EncodeMsgpack(enc *msgpack.Encoder) error {
	return enc.Encode([]int64{int64(s.N), s.Run, s.Decode})
}

func (s *slowTask) DecodeMsgpack(dec *msgpack.Decoder) error {
	var v []int64
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if len(v) != 3 {
		return errors.New("slowTask: want 3 numbers")
	}
	s.N, s.Run, s.Decode = int(v[0]), v[1], v[2]
	time.Sleep(time.Duration(s.Decode))
	return nil
}

// TestWatchdogChunkBoundary: the worker's watchdog counted a chunk's first
// task from when it first saw the previous chunk's last task start, so a
// last task that ran for most of the timeout followed by a first task
// that took the rest to decode was reported hung, under the index of the
// previous task, in the new chunk: task 1, which had run for 0.8 of the
// timeout and never started its work, failed with ErrTaskTimeout. Each
// task runs under the limit here; none may fail.
func TestWatchdogChunkBoundary(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleSlow, Workers: 1, InFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	if err := p.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	// Each task takes 0.55 of the limit, so that each has 0.9 s to spare
	// on a loaded machine (with 0.6 and 0.8 of one second, a task late by
	// 0.2 s failed under -race with both cores busy), and the two together
	// still go over it, which the old watchdog counted as one.
	const limit = 2 * time.Second
	tasks := []slowTask{
		{N: 0, Run: int64(limit * 55 / 100)},
		{N: 1, Decode: int64(limit * 55 / 100)},
	}
	got, err := MapWith[slowTask, int](ctx, p, tasks, MapOptions{ChunkSize: 1, TaskTimeout: limit})
	if err != nil {
		t.Fatalf("map of two tasks under the limit: %v (events %+v)", err, p.Events())
	}
	if got[0] != 0 || got[1] != 1 {
		t.Errorf("results %v, want [0 1]", got)
	}
}

// TestTimeoutBehindEarlierMap: a map that ended early (its callback
// failed) leaves a hung task of its own, sent without a timeout, on a
// worker; the next map, with a timeout, queues a chunk on that worker
// behind it. The parent's backstop watched only chunks of the running
// map, so that chunk waited forever and the map hung to its deadline.
func TestTimeoutBehindEarlierMap(t *testing.T) {
	slack := overdueSlack
	overdueSlack = 500 * time.Millisecond
	t.Cleanup(func() { overdueSlack = slack })
	ctx := testCtx(t)
	p := newHangPool(t, ctx, "5")
	if err := p.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	// Worker 0 gets both chunks; it answers 1, and the map ends with 5
	// still running on it.
	stop := errors.New("stop")
	err := MapUnordered(ctx, p, func(yield func(int) bool) {
		_ = yield(1) && yield(5)
	}, 1, func(i, r int, err error) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("first map: %v, want the callback's error", err)
	}
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tasks := make([]int, 20)
	for i := range tasks {
		tasks[i] = 10 + i
	}
	got, err := MapWith[int, int](mctx, p, tasks, MapOptions{ChunkSize: 1, TaskTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("second map, with a timeout: %v (events %+v)", err, p.Events())
	}
	for i, r := range got {
		if r != tasks[i]*tasks[i] {
			t.Errorf("result %d = %d, want %d", i, r, tasks[i]*tasks[i])
		}
	}
}

// deep is a msgpack value nested n arrays deep: n x [1-array] then nil.
func deep(n int) []byte {
	b := bytes.Repeat([]byte{0x91}, n)
	return append(b, 0xc0)
}

// TestDeepNesting is issue 15's finding 2 on the pool's own msgpack
// paths: the parent decodes results of types without a fast path (and a
// worker decodes such tasks) with msgpack's Decoder, which recurses once
// per level, over bytes the other process wrote into a byte string that
// ipc's frame check does not look into. Two million levels were a fatal
// stack overflow of the whole process, which no recover catches; now the
// bytes are refused before decoding.
func TestDeepNesting(t *testing.T) {
	data := deep(2_000_000)
	rd := newReader[any]()
	var v any
	if err := rd.reset(data); err == nil {
		if err := rd.next(&v); err == nil {
			t.Fatal("2,000,000 levels decoded without an error")
		}
	}
	if err := rd.reset(data); err == nil {
		if err := rd.skip(); err == nil {
			t.Fatal("2,000,000 levels skipped without an error")
		}
	}
	var out bytes.Buffer
	h := Raw(func(ctx context.Context, m msgpack.RawMessage) (msgpack.RawMessage, error) { return m, nil })
	if _, err := h.run(t.Context(), data, 1, &out, msgpack.NewEncoder(&out), nil); err == nil {
		t.Fatal("a Raw handler took a task 2,000,000 levels deep")
	}
	// A value as deep as the limit still decodes.
	if err := rd.reset(deep(maxDepth - 1)); err != nil {
		t.Fatalf("%d levels: %v", maxDepth-1, err)
	}
	if err := rd.next(&v); err != nil {
		t.Fatalf("%d levels: %v", maxDepth-1, err)
	}
}

// TestTaskOverFrameLimit: a task whose encoding is over the socket's
// frame limit (ipc.DefaultMaxFrame, 16 MiB) cannot be sent. The writer's
// failed send kills the worker, the death is blamed on the chunk, and
// after MaxRetries workers the task fails with ErrWorkerDeaths, as if it
// had crashed them: three workers started for nothing, and an error that
// points the wrong way.
func TestTaskOverFrameLimit(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleBig, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	tasks := []string{"small", strings.Repeat("x", 17<<20), "small too"}
	got, err := MapWith[string, string](ctx, p, tasks, MapOptions{ChunkSize: 1})
	var te *TaskError
	if !errors.As(err, &te) || te.Index != 1 {
		t.Fatalf("err = %v, want task 1 failed", err)
	}
	if got[0] != tasks[0] || got[2] != tasks[2] {
		t.Errorf("the other tasks' results are wrong")
	}
	t.Logf("err = %v; %d worker deaths", err, len(p.Events()))
	if errors.Is(err, ErrWorkerDeaths) || len(p.Events()) != 0 {
		t.Errorf("a task too large to send cost %d workers and failed as one that kills them: %v", len(p.Events()), err)
	}
}

// TestResultOverFrameLimit: a result too large for a message made its
// worker's send fail and the worker exit, blamed as a crash: three workers
// and ErrWorkerDeaths. Now the task fails with the reason, in the worker.
func TestResultOverFrameLimit(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleGrow, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	got, err := MapWith[int, string](ctx, p, []int{3, 17 << 20, 5}, MapOptions{ChunkSize: 3})
	var te *TaskError
	var he *HandlerError
	if !errors.As(err, &te) || te.Index != 1 || !errors.As(err, &he) || !strings.Contains(he.Msg, ErrTooLarge.Error()) {
		t.Fatalf("err = %v, want task 1 failed as too large", err)
	}
	if got[0] != "yyy" || got[2] != "yyyyy" || len(p.Events()) != 0 {
		t.Errorf("results %q, %q, deaths %+v: want the others' results and no death", got[0], got[2], p.Events())
	}
}

// TestRawResultOverFrameLimit is TestResultOverFrameLimit for a Raw
// handler, in process: the task fails, the chunk's answer holds nil.
func TestRawResultOverFrameLimit(t *testing.T) {
	big := msgpack.RawMessage(appendFast(nil, strings.Repeat("z", 16<<20)))
	h := Raw(func(ctx context.Context, m msgpack.RawMessage) (msgpack.RawMessage, error) { return big, nil })
	var out bytes.Buffer
	errs, err := h.run(t.Context(), []byte{0x01}, 1, &out, msgpack.NewEncoder(&out), nil)
	if err != nil || len(errs) != 1 || !strings.Contains(errs[0], ErrTooLarge.Error()) || !bytes.Equal(out.Bytes(), []byte{0xc0}) {
		t.Fatalf("errs %q, err %v, %d bytes out: want the task failed as too large and nil", errs, err, out.Len())
	}
}

// TestCancelDuringReplacement cancels a map right after SIGKILLing a
// worker, so that the map's context ends while the death is handled and a
// replacement starts: the map returns the cause, and no child or
// goroutine is left.
func TestCancelDuringReplacement(t *testing.T) {
	ctx := testCtx(t)
	before := runtime.NumGoroutine()
	p := newPool(t, ctx, 2, "none", "1ms")
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	count := 0
	err := MapUnordered(mctx, p, ints2seq(1000), 1, func(i int, r int, err error) error {
		if count++; count == 5 {
			if err := syscall.Kill(p.Busy()[0], syscall.SIGKILL); err != nil {
				return err
			}
			// Wait for the death to be in the inbox, so the map handles
			// it (and starts a replacement) before it sees the cancel.
			for queued(p) == 0 && ctx.Err() == nil {
				runtime.Gosched()
			}
			cancel()
		}
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	noChildren(t)
	goroutinesBack(t, before)
}

// TestCloseDuringMap: Close from another goroutine waits for the running
// map, which completes with every result; the next map finds the pool
// closed.
func TestCloseDuringMap(t *testing.T) {
	ctx := testCtx(t)
	before := runtime.NumGoroutine()
	p := newPool(t, ctx, 2, "none", "1ms")
	closed := make(chan error, 1)
	n := 0
	seen := make([]int, 300)
	err := MapUnordered(ctx, p, ints2seq(300), 1, func(i int, r int, err error) error {
		if n++; n == 10 {
			go func() { closed <- p.Close() }()
		}
		if err == nil && r != i*i {
			err = fmt.Errorf("result %d = %d", i, r)
		}
		seen[i]++
		return err
	})
	if err != nil {
		t.Fatalf("map during Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("task %d delivered %d times", i, c)
		}
	}
	if _, err := Map[int, int](ctx, p, ints(3), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("map after Close: %v, want ErrClosed", err)
	}
	noChildren(t)
	goroutinesBack(t, before)
}

// queued is how many messages wait in p's inbox.
func queued(p *Pool) int {
	p.inbox.mu.Lock()
	defer p.inbox.mu.Unlock()
	return len(p.inbox.q) - p.inbox.head
}

// roleLate's first worker (the first to create args[0]) answers its first
// chunk late: it holds chunks A and B, reports A's task 0 hung (its
// watchdog firing as the task ends), then sends A's results anyway (in
// the order args[1] says: "hung-first" or "results-first"), and exits
// with ExitHung, as a worker whose watchdog and serving goroutine race at
// the limit does. Other workers serve squares.
const roleLate = "pool-test-late"

func init() {
	procs.Register(roleLate, func(ctx context.Context, args []string) error {
		f, err := os.OpenFile(args[0], os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return WorkerMain(Typed(square(nil)))(ctx, nil)
		}
		f.Close()
		cf, err := procs.ChildFile(procs.FDControl, procs.Socket, "pool-conn")
		if err != nil {
			return err
		}
		conn, err := ipc.FileConn(cf)
		if err != nil {
			return err
		}
		if err := conn.Send(&resultMsg{ID: helloID}); err != nil {
			return err
		}
		var a, b chunkMsg
		if err := conn.Recv(&a); err != nil {
			return err
		}
		if err := conn.Recv(&b); err != nil {
			return err
		}
		var x int
		if err := msgpack.Unmarshal(a.Tasks, &x); err != nil {
			return err
		}
		hung := &resultMsg{ID: a.ID, Hung: 1}
		res := &resultMsg{ID: a.ID, N: 1, Results: appendFast(nil, x*x)}
		msgs := []*resultMsg{hung, res}
		if args[1] == "results-first" {
			msgs = []*resultMsg{res, hung}
		}
		for _, m := range msgs {
			if err := conn.Send(m); err != nil {
				return err
			}
		}
		os.Exit(ExitHung)
		return nil
	})
}

// TestHungReportRacesResult: a worker's watchdog may fire just as the
// task ends, so the parent can get a chunk's hung report and then its
// results, or its results and then a hung report for it. The chunk had
// completed: its results are delivered, and the next chunk, which the
// worker may not even have started, is sent again blamed for nothing.
// Before, "hung first" failed the next chunk's task with ErrTaskTimeout
// (a task that never ran), and "results first" blamed it for a death.
func TestHungReportRacesResult(t *testing.T) {
	for _, order := range []string{"hung-first", "results-first"} {
		t.Run(order, func(t *testing.T) {
			ctx := testCtx(t)
			mark := filepath.Join(t.TempDir(), "first")
			p, err := New(ctx, Config{Role: roleLate, Args: []string{mark, order}, Workers: 1, InFlight: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				p.Close()
				noChildren(t)
			})
			got, err := MapWith[int, int](ctx, p, []int{2, 3, 4}, MapOptions{ChunkSize: 1, TaskTimeout: time.Minute})
			if err != nil {
				t.Fatalf("err = %v (events %+v), want every result", err, p.Events())
			}
			if got[0] != 4 || got[1] != 9 || got[2] != 16 {
				t.Errorf("results %v, want [4 9 16]", got)
			}
			evs := p.Events()
			if len(evs) != 1 || len(evs[0].Blamed) != 0 || len(evs[0].TimedOut) != 0 || evs[0].ExitCode != ExitHung {
				t.Errorf("events %+v, want one exit %d, nothing blamed or timed out", evs, ExitHung)
			}
		})
	}
}

// roleMute's first worker (the first to create args[0]) never says hello:
// it is stuck before serving (a role whose set-up hangs). Others serve
// squares.
const roleMute = "pool-test-mute"

func init() {
	procs.Register(roleMute, func(ctx context.Context, args []string) error {
		if f, err := os.OpenFile(args[0], os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			<-ctx.Done()
			return nil
		}
		return WorkerMain(Typed(square(nil)))(ctx, nil)
	})
}

// TestTimeoutWorkerNeverServes: the per-task timeout and its backstop
// counted from a worker's hello, so chunks queued on a worker that never
// said hello waited forever, and a map with a TaskTimeout hung to its own
// deadline. Now such a worker is killed after startDeadline, as a failed
// start, and its chunks go to the replacement, blamed for nothing.
func TestTimeoutWorkerNeverServes(t *testing.T) {
	sd := startDeadline
	// Long enough for the replacements: under -race on a loaded machine
	// (load average 40 on two cores) four replacements in a row took over
	// 2 s to say hello, were killed as failed starts, and the map gave up
	// with ErrWorkersFailing. The mute worker costs this once.
	startDeadline = 10 * time.Second
	t.Cleanup(func() { startDeadline = sd })
	ctx := testCtx(t)
	mark := filepath.Join(t.TempDir(), "first")
	p, err := New(ctx, Config{Role: roleMute, Args: []string{mark}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	mctx, cancel := context.WithTimeout(ctx, 50*time.Second)
	defer cancel()
	if _, err := MapWith[int, int](mctx, p, ints(4), MapOptions{ChunkSize: 1, TaskTimeout: 200 * time.Millisecond}); err != nil {
		t.Fatalf("map with a TaskTimeout on a worker that never serves: %v", err)
	}
	// (A replacement slower than startDeadline to start on a loaded
	// machine is killed too, and also blamed for nothing.)
	evs := p.Events()
	if len(evs) == 0 || !evs[0].Overdue || len(evs[0].Resent) == 0 {
		t.Errorf("events %+v, want an overdue start first, its chunks re-sent", evs)
	}
	for _, ev := range evs {
		if len(ev.Blamed) != 0 {
			t.Errorf("event %+v: a start-up blamed a task", ev)
		}
	}
}
