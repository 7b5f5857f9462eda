package pool

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"ipcplay/procs"
)

// roleSquare squares ints. Its args are the task value that makes it exit
// with status 7 ("none" for no such value) and a sleep per task. A negative
// task fails with an error.
const roleSquare = "pool-test-square"

func square(args []string) func(ctx context.Context, x int) (int, error) {
	poison, hasPoison := 0, false
	if len(args) > 0 && args[0] != "none" {
		poison, _ = strconv.Atoi(args[0])
		hasPoison = true
	}
	var sleep time.Duration
	if len(args) > 1 {
		sleep, _ = time.ParseDuration(args[1])
	}
	return func(ctx context.Context, x int) (int, error) {
		if hasPoison && x == poison {
			os.Exit(7)
		}
		if x < 0 {
			return 0, fmt.Errorf("negative task %d", x)
		}
		if sleep > 0 {
			time.Sleep(sleep)
		}
		return x * x, nil
	}
}

func TestMain(m *testing.M) {
	procs.Register(roleSquare, func(ctx context.Context, args []string) error {
		return WorkerMain(Typed(square(args)))(ctx, args)
	})
	procs.Register(roleEcho, WorkerMain(Raw(func(ctx context.Context, task msgpack.RawMessage) (msgpack.RawMessage, error) {
		var x int
		if err := msgpack.Unmarshal(task, &x); err != nil {
			return nil, err
		}
		switch {
		case x == 0:
			return nil, nil // msgpack nil
		case x < 0:
			return nil, errors.New("negative")
		}
		return task, nil
	})))
	procs.Register(roleBig, WorkerMain(Typed(echoString)))
	procs.Register(roleHang, func(ctx context.Context, args []string) error {
		return WorkerMain(Typed(hang(args)))(ctx, args)
	})
	procs.Register(roleCrash, func(ctx context.Context, args []string) error {
		return errors.New("cannot start")
	})
	procs.Init()
	os.Exit(m.Run())
}

// newPool starts a pool of the square role for a test, closed and checked
// for leftover children when the test ends.
func newPool(t *testing.T, ctx context.Context, workers int, args ...string) *Pool {
	t.Helper()
	p, err := New(ctx, Config{Role: roleSquare, Args: args, Workers: workers, Stderr: nil})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		noChildren(t)
	})
	return p
}

func noChildren(t *testing.T) {
	t.Helper()
	kids, err := procs.Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 0 {
		t.Errorf("children left: %v", kids)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func ints(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// goroutinesBack waits for the number of goroutines to fall back to n:
// every goroutine the pool started has an owner that waited. The 30 s are a
// hang guard that a loaded machine cannot reach, not a speed.
func goroutinesBack(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines after Close, %d before New", runtime.NumGoroutine(), n)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMapInOrder(t *testing.T) {
	ctx := testCtx(t)
	before := runtime.NumGoroutine()
	p := newPool(t, ctx, 2)
	for _, chunk := range []int{1, 7, 5000} {
		got, err := Map[int, int](ctx, p, ints(1000), chunk)
		if err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		for i, r := range got {
			if r != i*i {
				t.Fatalf("chunk %d: result %d = %d, want %d", chunk, i, r, i*i)
			}
		}
	}
	if ev := p.Events(); len(ev) != 0 {
		t.Errorf("events without deaths: %+v", ev)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	noChildren(t)
	goroutinesBack(t, before)
	if _, err := Map[int, int](ctx, p, ints(3), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("map after Close: %v, want ErrClosed", err)
	}
}

func TestMapEmpty(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 1)
	got, err := Map[int, int](ctx, p, nil, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty map: %v, %v", got, err)
	}
}

func TestTaskErrors(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2)
	tasks := ints(100)
	tasks[10], tasks[55] = -10, -55
	got, err := Map[int, int](ctx, p, tasks, 8)
	var te *TaskError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a *TaskError", err)
	}
	var he *HandlerError
	if te.Index != 10 || !errors.As(te, &he) || he.Msg != "negative task -10" {
		t.Errorf("first error = %#v (%v), want task 10's handler error", te, te.Err)
	}
	if s := err.Error(); s != "pool: task 10: negative task -10\npool: task 55: negative task -55" {
		t.Errorf("error text %q", s)
	}
	for i, r := range got {
		if want := i * i; i != 10 && i != 55 && r != want {
			t.Fatalf("result %d = %d, want %d", i, r, want)
		}
	}
}

func TestUnorderedExactlyOnce(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 3)
	const n = 5000
	seen := make([]int, n)
	err := MapUnordered(ctx, p, func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}, 3, func(i int, r int, err error) error {
		if err != nil {
			return err
		}
		if r != i*i {
			return fmt.Errorf("result %d = %d", i, r)
		}
		seen[i]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("task %d delivered %d times", i, c)
		}
	}
}

func TestKillWorkerUnordered(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2)
	const n = 20000
	seen := make([]int, n)
	var killed int
	var killedAt time.Time
	count := 0
	err := MapUnordered(ctx, p, ints2seq(n), 10, func(i int, r int, err error) error {
		if err != nil {
			return err
		}
		if r != i*i {
			return fmt.Errorf("result %d = %d", i, r)
		}
		seen[i]++
		count++
		if count == 2000 {
			killed = p.Busy()[0]
			killedAt = time.Now()
			if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("task %d delivered %d times", i, c)
		}
	}
	evs := p.Events()
	if len(evs) != 1 {
		t.Fatalf("events = %+v, want one death", evs)
	}
	ev := evs[0]
	if ev.PID != killed || ev.Signal != "SIGKILL" || ev.ExitCode != -1 || ev.Replacement == 0 || ev.Replacement == killed {
		t.Errorf("event = %+v, want pid %d killed by SIGKILL and replaced", ev, killed)
	}
	if len(ev.Resent) == 0 {
		t.Errorf("event = %+v: nothing re-sent", ev)
	}
	// Noticed from its socket's EOF and its exit, not from a timeout: no
	// task timed out and the parent did not find it overdue. (How soon is
	// the machine's load; it is logged.)
	if ev.Overdue || len(ev.TimedOut) != 0 {
		t.Errorf("event = %+v: the death was found by a timeout", ev)
	}
	t.Logf("death noticed %v after the kill", ev.Time.Sub(killedAt))
	if pids := p.PIDs(); pids[0] != ev.Replacement {
		t.Errorf("slot 0 runs %d, want the replacement %d", pids[0], ev.Replacement)
	}
}

func ints2seq(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

func TestKillWorkerMap(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2)
	const n = 20000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for p.Completed() < 1000 {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		syscall.Kill(p.PIDs()[1], syscall.SIGKILL)
	}()
	got, err := Map[int, int](ctx, p, ints(n), 10)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r != i*i {
			t.Fatalf("result %d = %d, want %d", i, r, i*i)
		}
	}
	if evs := p.Events(); len(evs) != 1 || evs[0].Signal != "SIGKILL" || evs[0].Slot != 1 {
		t.Errorf("events = %+v, want one SIGKILL in slot 1", evs)
	}
}

func TestPoisonTask(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2, "500")
	got, err := Map[int, int](ctx, p, ints(1000), 10)
	var te *TaskError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a *TaskError", err)
	}
	if te.Index != 500 || te.Deaths != DefaultMaxRetries || !errors.Is(err, ErrWorkerDeaths) {
		t.Errorf("task error = %+v, want task 500 failed after %d deaths", te, DefaultMaxRetries)
	}
	var ce *procs.ChildError
	if !errors.As(te, &ce) || ce.ExitCode != 7 {
		t.Errorf("task error %v does not carry the worker's exit 7", te)
	}
	for i, r := range got {
		if i != 500 && r != i*i {
			t.Fatalf("result %d = %d, want %d", i, r, i*i)
		}
	}
	evs := p.Events()
	if len(evs) != DefaultMaxRetries {
		t.Fatalf("%d events, want %d: %+v", len(evs), DefaultMaxRetries, evs)
	}
	for _, ev := range evs {
		if ev.ExitCode != 7 || ev.Signal != "" {
			t.Errorf("event %+v, want exit 7", ev)
		}
	}
	if f := evs[len(evs)-1].Failed; len(f) != 1 || f[0] != 500 {
		t.Errorf("last event failed %v, want [500]", f)
	}
	// First the chunk goes again whole; then, one death from failing, its
	// tasks go one by one.
	if b := evs[0].Blamed; len(b) != 10 || b[0] != 500 || !slices.Contains(evs[0].Resent, 500) {
		t.Errorf("first death blamed %v and re-sent %v, want chunk 500..509 re-sent", b, evs[0].Resent)
	}
	if b := evs[1].Blamed; len(b) != 10 {
		t.Errorf("second death blamed %v, want the chunk again", b)
	}
	if b := evs[2].Blamed; len(b) != 1 || b[0] != 500 {
		t.Errorf("third death blamed %v, want [500] alone", b)
	}
	// The pool still works.
	if got, err := Map[int, int](ctx, p, []int{3}, 1); err != nil || got[0] != 9 {
		t.Errorf("map after poison: %v, %v", got, err)
	}
}

func TestPoisonTaskMaxRetries2(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleSquare, Args: []string{"42"}, Workers: 2, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Close()
		noChildren(t)
	}()
	got, err := Map[int, int](ctx, p, ints(100), 8)
	var te *TaskError
	if !errors.As(err, &te) || te.Index != 42 || te.Deaths != 2 {
		t.Fatalf("err = %v, want task 42 failed after 2 deaths", err)
	}
	if joined, ok := err.(interface{ Unwrap() []error }); !ok || len(joined.Unwrap()) != 1 {
		t.Errorf("err = %v, want only task 42 to fail", err)
	}
	for i, r := range got {
		if i != 42 && r != i*i {
			t.Fatalf("result %d = %d, want %d", i, r, i*i)
		}
	}
	if n := len(p.Events()); n != 2 {
		t.Errorf("%d deaths, want 2", n)
	}
}

func TestCancelStopsWorkers(t *testing.T) {
	ctx := testCtx(t)
	before := runtime.NumGoroutine()
	p := newPool(t, ctx, 2, "none", "5ms")
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	count := 0
	err := MapUnordered(mctx, p, ints2seq(1000), 1, func(i int, r int, err error) error {
		if count++; count == 5 {
			cancel()
		}
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	noChildren(t)
	goroutinesBack(t, before)
	if _, err := Map[int, int](ctx, p, ints(3), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("map after cancel: %v, want ErrClosed", err)
	}
}

func TestCallbackErrorEndsMap(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2)
	stop := errors.New("enough")
	err := MapUnordered(ctx, p, ints2seq(10000), 5, func(i int, r int, err error) error {
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the callback's", err)
	}
	// Chunks left over from the ended map must not leak into the next.
	got, err := Map[int, int](ctx, p, ints(500), 5)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r != i*i {
			t.Fatalf("result %d = %d, want %d", i, r, i*i)
		}
	}
}

func TestLazyInput(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2)
	const n, chunk = 1_000_000, 1000
	pulled, delivered, maxAhead := 0, 0, 0
	input := func(yield func(int) bool) {
		for i := range n {
			pulled++
			if !yield(i % 1000) {
				return
			}
		}
	}
	var sum int
	err := MapUnordered(ctx, p, input, chunk, func(i int, r int, err error) error {
		if err != nil {
			return err
		}
		delivered++
		sum += r
		maxAhead = max(maxAhead, pulled-delivered)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if delivered != n {
		t.Fatalf("delivered %d of %d", delivered, n)
	}
	if limit := (2*DefaultInFlight + 1) * chunk; maxAhead > limit {
		t.Errorf("read %d tasks ahead of the results, limit %d", maxAhead, limit)
	}
	want := 0
	for i := range 1000 {
		want += i * i
	}
	if sum != want*(n/1000) {
		t.Errorf("sum %d, want %d", sum, want*(n/1000))
	}
	t.Logf("at most %d tasks read ahead", maxAhead)
}

func TestNewErrors(t *testing.T) {
	ctx := testCtx(t)
	if _, err := New(ctx, Config{Role: "pool-test-nope", Workers: 1}); err == nil {
		t.Error("unregistered role accepted")
	}
	if _, err := New(ctx, Config{Role: roleSquare}); err == nil {
		t.Error("zero workers accepted")
	}
}

// roleEcho returns each task as it came, through a Raw handler: nil for 0,
// an error for a negative number.
const roleEcho = "pool-test-echo"

func TestRawHandler(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleEcho, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Close()
		noChildren(t)
	}()
	tasks := []int{0, 1, -2, 3, 4}
	got, err := Map[int, int](ctx, p, tasks, 2)
	var te *TaskError
	if !errors.As(err, &te) || te.Index != 2 || te.Err.Error() != "negative" {
		t.Errorf("err = %v, want task 2's error", err)
	}
	if want := []int{0, 1, 0, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// roleCrash fails at once, before serving.
const roleCrash = "pool-test-crash"

func TestWorkersFailingAtStart(t *testing.T) {
	ctx := testCtx(t)
	p, err := New(ctx, Config{Role: roleCrash, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = Map[int, int](ctx, p, ints(100), 10)
	if !errors.Is(err, ErrWorkersFailing) {
		t.Fatalf("err = %v, want ErrWorkersFailing", err)
	}
	noChildren(t)
	evs := p.Events()
	if len(evs) == 0 || evs[0].ExitCode != 1 || len(evs[0].Blamed) != 0 {
		t.Errorf("events %+v, want exit 1 with nothing blamed", evs)
	}
}

func TestReadyAndStartups(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2)
	if err := p.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Startups()
	if len(st) != 2 || st[0] <= 0 || st[1] <= 0 {
		t.Fatalf("Startups = %v, want two positive times", st)
	}
	// A worker killed between maps is replaced, and its replacement's
	// start-up is counted too.
	if err := syscall.Kill(p.PIDs()[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A map sends chunks to every worker, so it meets the death.
	if _, err := Map[int, int](ctx, p, ints(100), 1); err != nil {
		t.Fatal(err)
	}
	if len(p.Events()) != 1 {
		t.Fatalf("events %+v, want one death", p.Events())
	}
	if err := p.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Startups(); len(st) != 3 {
		t.Errorf("Startups after a replacement = %v, want 3", st)
	}
	if got, err := Map[int, int](ctx, p, ints(10), 0); err != nil || got[9] != 81 {
		t.Errorf("map after Ready: %v, %v", got, err)
	}
}
