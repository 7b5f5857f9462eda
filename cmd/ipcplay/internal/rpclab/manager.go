package rpclab

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// The child roles of the manager lab. Register them with ManagerServerMain
// and ManagerWorkerMain in main and TestMain.
const (
	ManagerServerRole = "ipcplay-manager-server"
	ManagerWorkerRole = "ipcplay-manager-worker"
)

// Limits of ManagerConfig.
const (
	MaxProcs = 64
	MaxOps   = 10_000_000
)

// Modes of the manager lab.
const (
	ModeRPC        = "rpc"        // worker processes calling a server process
	ModeGoroutines = "goroutines" // goroutines sharing the state under a sync.Mutex
	ModeShm        = "shm"        // worker processes sharing the state in a memfd under a futex mutex
)

// ManagerConfig is one run of the manager lab.
type ManagerConfig struct {
	Procs int // workers
	Ops   int // operations per worker; one is an append plus an incr
}

// Shared is the state the manager serves: a list and a dict, under one
// mutex. The goroutines mode uses it directly; the server child serves it.
type Shared struct {
	mu    sync.Mutex
	list  []int64
	dict  map[string]int64
	calls int64 // Append and Incr calls served
}

// NewShared returns an empty Shared.
func NewShared() *Shared { return &Shared{dict: make(map[string]int64)} }

// Append adds v to the list and returns the list's new length.
func (s *Shared) Append(v int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, v)
	s.calls++
	return len(s.list)
}

// Incr adds delta to the dict entry key and returns the new value.
func (s *Shared) Incr(key string, delta int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dict[key] += delta
	s.calls++
	return s.dict[key]
}

// Snapshot is a copy of the shared state, with the count of the calls
// that changed it: the work the server (or the region) saw done.
type Snapshot struct {
	List  []int64
	Dict  map[string]int64
	Calls int64
}

// Snapshot returns a copy of the state.
func (s *Shared) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{List: append([]int64(nil), s.list...), Dict: make(map[string]int64, len(s.dict)), Calls: s.calls}
	for k, v := range s.dict {
		snap.Dict[k] = v
	}
	return snap
}

// IncrArgs are the arguments of the "incr" method.
type IncrArgs struct {
	//lint:ignore U1000 msgpack reads its tag
	_msgpack struct{} `msgpack:",as_array"`
	Key      string
	Delta    int64
}

// register offers s over RPC as append, incr and snapshot.
func (s *Shared) register(srv *ipc.Server) error {
	return errors.Join(
		srv.Register("append", func(_ context.Context, v int64) (int, error) { return s.Append(v), nil }),
		srv.Register("incr", func(_ context.Context, a IncrArgs) (int64, error) { return s.Incr(a.Key, a.Delta), nil }),
		srv.Register("snapshot", func(_ context.Context, _ struct{}) (Snapshot, error) { return s.Snapshot(), nil }),
	)
}

// op is operation k of worker w: append a value unique to (w, k), then
// count it in the dict.
func value(w, k, ops int) int64 { return int64(w)*int64(ops) + int64(k) }

const totalKey = "total"

// Check verifies a final state: the list holds every value of every worker
// once, each worker's values in the order it appended them, and the dict's
// total counts them all.
func Check(snap Snapshot, cfg ManagerConfig) error {
	want := cfg.Procs * cfg.Ops
	if len(snap.List) != want {
		return fmt.Errorf("list has %d values, want %d", len(snap.List), want)
	}
	next := make([]int, cfg.Procs) // the next k expected of each worker
	for i, v := range snap.List {
		if v < 0 || v >= int64(want) {
			return fmt.Errorf("list[%d] = %d, no worker appends that", i, v)
		}
		w, k := int(v/int64(cfg.Ops)), int(v%int64(cfg.Ops))
		if k != next[w] {
			return fmt.Errorf("list[%d] = %d: worker %d's op %d, expected its op %d (lost or reordered)", i, v, w, k, next[w])
		}
		next[w]++
	}
	if got := snap.Dict[totalKey]; got != int64(want) {
		return fmt.Errorf("dict[%q] = %d, want %d", totalKey, got, want)
	}
	return nil
}

// ModeResult is how one mode of the lab went. Ops and Calls are the work
// done as the final state shows it, not what the configuration asked for.
type ModeResult struct {
	Mode    string
	Elapsed time.Duration // from the start signal until the last worker finished
	Setup   time.Duration // starting the server and the workers, until all were ready
	Ops     int           // operations done, all workers together: the final list's length
	// Calls counts the appends and increments the state received: round
	// trips served in rpc mode, critical sections in the others.
	Calls int
	Err   error // what Check found wrong, if anything
}

// result fills a ModeResult from the final state.
func result(mode string, snap Snapshot, cfg ManagerConfig, setup, elapsed time.Duration) ModeResult {
	return ModeResult{Mode: mode, Elapsed: elapsed, Setup: setup, Ops: len(snap.List), Calls: int(snap.Calls),
		Err: Check(snap, cfg)}
}

// NsPerOp is the time per operation, all workers together.
func (r ModeResult) NsPerOp() float64 {
	return float64(r.Elapsed.Nanoseconds()) / float64(max(r.Ops, 1))
}

// OpsPerSec is the throughput of all workers together.
func (r ModeResult) OpsPerSec() float64 { return float64(r.Ops) / max(r.Elapsed.Seconds(), 1e-9) }

// RunManager runs the lab in each of modes.
func RunManager(ctx context.Context, cfg ManagerConfig, modes []string) ([]ModeResult, error) {
	if cfg.Procs < 1 || cfg.Procs > MaxProcs || cfg.Ops < 1 || cfg.Ops > MaxOps {
		return nil, fmt.Errorf("manager: %d procs of %d ops: want 1..%d procs and 1..%d ops", cfg.Procs, cfg.Ops, MaxProcs, MaxOps)
	}
	var out []ModeResult
	for _, m := range modes {
		var r ModeResult
		var err error
		switch m {
		case ModeRPC:
			r, err = runRPC(ctx, cfg)
		case ModeGoroutines:
			r, err = runGoroutines(ctx, cfg)
		case ModeShm:
			r, err = runShm(ctx, cfg)
		default:
			return nil, fmt.Errorf("manager: unknown mode %q", m)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// checkEvery is how many operations a goroutine worker does between looks
// at its context.
const checkEvery = 4096

func runGoroutines(ctx context.Context, cfg ManagerConfig) (ModeResult, error) {
	start := time.Now()
	s := NewShared()
	gate := make(chan struct{})
	errs := make([]error, cfg.Procs)
	var ready, wg sync.WaitGroup
	for w := range cfg.Procs {
		ready.Add(1)
		wg.Go(func() {
			ready.Done()
			<-gate
			for k := range cfg.Ops {
				if k%checkEvery == 0 && ctx.Err() != nil {
					errs[w] = ctx.Err()
					return
				}
				s.Append(value(w, k, cfg.Ops))
				s.Incr(totalKey, 1)
			}
		})
	}
	ready.Wait()
	setup := time.Since(start)
	start = time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return ModeResult{}, fmt.Errorf("manager: goroutines: %w", err)
	}
	return result(ModeGoroutines, s.Snapshot(), cfg, setup, elapsed), nil
}

// runRPC starts the server child and the workers, opens the gate, waits for
// them, and checks the state through RPC.
func runRPC(ctx context.Context, cfg ManagerConfig) (res ModeResult, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	raw := make([]byte, 32)
	rand.Read(raw)
	key := []byte(hex.EncodeToString(raw))
	env := append(os.Environ(), KeyEnv+"="+string(key))

	dir, err := ipc.PrivateDir()
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "manager.sock")
	ln, err := ipc.Listen(ipc.Stream, path)
	if err != nil {
		return res, err
	}
	lf, err := ln.File()
	ln.SetUnlinkOnClose(false) // the child serves on it; RemoveAll cleans up
	ln.Close()
	if err != nil {
		return res, fmt.Errorf("manager: listener: %w", err)
	}

	// The server runs until its stdin closes.
	srvIn, srvInW, err := os.Pipe()
	if err != nil {
		lf.Close()
		return res, fmt.Errorf("manager: %w", err)
	}
	srv := procs.Command(ctx, ManagerServerRole)
	srv.ExtraFiles = []*os.File{lf}
	srv.Stdin = srvIn
	srv.Env = env
	err = srv.Start()
	lf.Close()
	srvIn.Close()
	if err != nil {
		srvInW.Close()
		return res, fmt.Errorf("manager: start server: %w", err)
	}
	defer func() {
		srvInW.Close()
		if werr := srv.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("manager: server: %w", werr)
		}
	}()

	// The parent's own client, for the final snapshot, connects now, so
	// that the socket's directory can go as soon as every worker has
	// connected too: a parent killed mid-run then leaves nothing on disk.
	cl, err := ipc.DialClient(ctx, path, key, 0)
	if err != nil {
		return res, fmt.Errorf("manager: %w", err)
	}
	defer cl.Close()

	removeDir := func() { os.RemoveAll(dir) }
	setup, elapsed, err := runWorkers(ctx, cfg, start, removeDir, func(ctx context.Context, i int) *procs.Cmd {
		w := procs.Command(ctx, ManagerWorkerRole, "-socket", path, "-index", strconv.Itoa(i), "-ops", strconv.Itoa(cfg.Ops))
		w.Env = env
		return w
	})
	if err != nil {
		return res, err
	}
	var snap Snapshot
	if err := cl.Call(ctx, "snapshot", struct{}{}, &snap); err != nil {
		return res, fmt.Errorf("manager: %w", err)
	}
	return result(ModeRPC, snap, cfg, setup, elapsed), nil
}

// runWorkers starts cfg.Procs workers made by mk on a context that a
// failure cancels, waits until each has
// said "ready", starts them all at once by closing the gate (their stdin),
// and waits until each has said "done" and exited. setup runs from start
// to all ready; elapsed from the gate to the last "done". If onReady is not
// nil, it runs once all are ready, before the gate opens.
func runWorkers(ctx context.Context, cfg ManagerConfig, start time.Time, onReady func(), mk func(ctx context.Context, i int) *procs.Cmd) (setup, elapsed time.Duration, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gate, gateW, err := os.Pipe()
	if err != nil {
		return 0, 0, fmt.Errorf("manager: %w", err)
	}
	defer gateW.Close()
	var workers []*procs.Cmd
	var outs []*bufio.Reader
	defer func() {
		gateW.Close()
		for i, w := range workers {
			if werr := w.Wait(); werr != nil && err == nil {
				err = fmt.Errorf("manager: worker %d: %w", i, werr)
			}
		}
	}()
	for i := range cfg.Procs {
		outR, outW, perr := os.Pipe()
		if perr != nil {
			gate.Close()
			return 0, 0, fmt.Errorf("manager: %w", perr)
		}
		w := mk(ctx, i) // on ctx: a failure cancels the rest
		w.Index = i
		w.Stdin, w.Stdout = gate, outW
		serr := w.Start()
		outW.Close()
		if serr != nil {
			outR.Close()
			gate.Close()
			cancel()
			return 0, 0, fmt.Errorf("manager: start worker %d: %w", i, serr)
		}
		defer outR.Close()
		workers = append(workers, w)
		outs = append(outs, bufio.NewReader(outR))
	}
	gate.Close()
	for i, r := range outs {
		if err := expectLine(r, "ready"); err != nil {
			cancel()
			return 0, 0, fmt.Errorf("manager: worker %d: %w", i, err)
		}
	}
	setup = time.Since(start)
	if onReady != nil {
		onReady()
	}
	t0 := time.Now()
	gateW.Close()
	for i, r := range outs {
		if err := expectLine(r, "done"); err != nil {
			cancel()
			return 0, 0, fmt.Errorf("manager: worker %d: %w", i, err)
		}
	}
	return setup, time.Since(t0), nil
}

// expectLine reads one line from a worker and checks that it is want. A
// worker that dies says nothing more: its error is in Wait.
func expectLine(r *bufio.Reader, want string) error {
	line, err := r.ReadString('\n')
	if err != nil {
		if err == io.EOF {
			return fmt.Errorf("exited before saying %q", want)
		}
		return err
	}
	if strings.TrimSpace(line) != want {
		return fmt.Errorf("said %q, want %q", strings.TrimSpace(line), want)
	}
	return nil
}

// ManagerServerMain is the entry point of ManagerServerRole: it serves a
// Shared on the listening socket it inherits at procs.FDControl, with the
// key from $IPCPLAY_KEY, until its stdin closes.
func ManagerServerMain(ctx context.Context, args []string) error {
	key, err := LoadKey("")
	if err != nil {
		return err
	}
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "listener")
	if err != nil {
		return err
	}
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return fmt.Errorf("listener: %T is not a Unix listener", l)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	})
	srv := ipc.NewServer(ipc.ServerConfig{Auth: ipc.AuthConfig{Key: key}})
	if err := NewShared().register(srv); err != nil {
		ul.Close()
		return err
	}
	return srv.Serve(ctx, ul)
}

// ManagerWorkerMain is the entry point of ManagerWorkerRole: it connects,
// says "ready", waits for its stdin to close, does its operations, and says
// "done".
func ManagerWorkerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(ManagerWorkerRole, flag.ContinueOnError)
	path := fs.String("socket", "", "the server's socket")
	index := fs.Int("index", 0, "this worker's index")
	ops := fs.Int("ops", 0, "operations to do")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ops < 1 || *index < 0 {
		return fmt.Errorf("-ops %d -index %d: want ops >= 1 and index >= 0", *ops, *index)
	}
	key, err := LoadKey("")
	if err != nil {
		return err
	}
	cl, err := ipc.DialClient(ctx, *path, key, 0)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := fmt.Println("ready"); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	for k := range *ops {
		var n int
		if err := cl.Call(ctx, "append", value(*index, k, *ops), &n); err != nil {
			return err
		}
		var total int64
		if err := cl.Call(ctx, "incr", IncrArgs{Key: totalKey, Delta: 1}, &total); err != nil {
			return err
		}
	}
	_, err = fmt.Println("done")
	return err
}
