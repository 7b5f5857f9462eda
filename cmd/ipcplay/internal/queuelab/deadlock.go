package queuelab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// StufferRole is the child of the join-deadlock lab: it sends -n messages
// and exits.
const StufferRole = "ipcplay-queue-stuffer"

// Via is what the join-deadlock child sends through.
type Via string

const (
	ViaSocket Via = "socket" // a bare ipc.Conn: Send blocks once the socket buffer is full
	ViaQueue  Via = "queue"  // an ipc.Queue: Put blocks once the queue is full
)

// DeadlockConfig describes a join-deadlock run.
type DeadlockConfig struct {
	Via      Via
	Messages int           // messages the child sends before it exits
	Size     int           // payload bytes per message
	Capacity int           // queue capacity (ViaQueue)
	Watchdog time.Duration // how long the parent waits for the child before it looks why (then until it stops making progress)
}

// Evidence is what the watchdog saw of a child that did not exit.
type Evidence struct {
	PID       int
	State     string         // the process's state letter in /proc/PID/stat (S: sleeping)
	WChan     string         // /proc/PID/wchan: the kernel function it sleeps in, if readable
	Threads   map[string]int // thread count per "state wchan" from /proc/PID/task/*/
	CPUTicks  [2]uint64      // utime+stime, read twice Quiet apart: equal means no progress
	Quiet     time.Duration
	Unread    int            // ViaSocket: bytes waiting unread in the parent's end (SIOCINQ)
	HubStats  ipc.QueueStats // ViaQueue: the queue when the watchdog fired
	KilledBy  string         // the signal that ended the child
	WaitedFor time.Duration  // how long the parent had waited when the watchdog fired
}

// DeadlockResult compares joining first with draining first.
type DeadlockResult struct {
	Via Via
	// Join first: the parent waited for the child's exit before reading.
	Deadlocked bool
	Evidence   Evidence
	// Drain first: the parent read while waiting.
	Received      int
	ExitCode      int
	DrainDuration time.Duration
}

// RunJoinDeadlock shows the classic deadlock of joining a child that still
// has messages to send, then the fix: drain before (or while) joining.
func RunJoinDeadlock(ctx context.Context, cfg DeadlockConfig) (DeadlockResult, error) {
	if cfg.Messages < 1 || cfg.Size < 0 || cfg.Watchdog <= 0 {
		return DeadlockResult{}, fmt.Errorf("join deadlock: bad config %+v", cfg)
	}
	if cfg.Via == ViaQueue && cfg.Capacity < 1 {
		return DeadlockResult{}, fmt.Errorf("join deadlock: capacity %d, want at least 1", cfg.Capacity)
	}
	res := DeadlockResult{Via: cfg.Via}
	ev, deadlocked, err := joinFirst(ctx, cfg)
	if err != nil {
		return res, err
	}
	res.Deadlocked, res.Evidence = deadlocked, ev
	start := time.Now()
	n, err := drainFirst(ctx, cfg)
	if err != nil {
		return res, err
	}
	res.Received, res.DrainDuration = n, time.Since(start)
	return res, nil
}

// endpoint is the parent's side of the child's channel.
type endpoint struct {
	conn *ipc.Conn // ViaSocket
	q    *ipc.Queue
	file *os.File // the child's end
}

func newEndpoint(cfg DeadlockConfig) (*endpoint, error) {
	if cfg.Via == ViaSocket {
		c, f, err := ipc.Pair(ipc.Stream)
		if err != nil {
			return nil, err
		}
		return &endpoint{conn: c, file: f}, nil
	}
	if cfg.Via != ViaQueue {
		return nil, fmt.Errorf("join deadlock: unknown via %q", cfg.Via)
	}
	q, err := ipc.NewQueue(cfg.Capacity)
	if err != nil {
		return nil, err
	}
	f, err := q.Attach()
	if err != nil {
		q.Shutdown()
		return nil, err
	}
	return &endpoint{q: q, file: f}, nil
}

func (e *endpoint) close() {
	if e.conn != nil {
		e.conn.Close()
	}
	if e.q != nil {
		e.q.Shutdown()
	}
}

func (e *endpoint) start(ctx context.Context, cfg DeadlockConfig) (*procs.Cmd, error) {
	cmd := procs.Command(ctx, StufferRole, "-via", string(cfg.Via),
		"-n", strconv.Itoa(cfg.Messages), "-size", strconv.Itoa(cfg.Size))
	cmd.ExtraFiles = []*os.File{e.file}
	cmd.Stderr = os.Stderr
	err := cmd.Start()
	e.file.Close()
	if err != nil {
		return nil, fmt.Errorf("join deadlock: start child: %w", err)
	}
	return cmd, nil
}

// joinFirst waits for the child before reading anything, the mistake. If the
// child has not exited after the watchdog's delay, it gathers evidence of
// why, kills the child, and reports the deadlock.
func joinFirst(ctx context.Context, cfg DeadlockConfig) (Evidence, bool, error) {
	e, err := newEndpoint(cfg)
	if err != nil {
		return Evidence{}, false, err
	}
	defer e.close()
	cmd, err := e.start(ctx, cfg)
	if err != nil {
		return Evidence{}, false, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	start := time.Now()
	select {
	case err := <-exited:
		if err != nil {
			return Evidence{}, false, fmt.Errorf("join deadlock: child: %w", err)
		}
		return Evidence{}, false, nil // it all fitted in the buffers: no deadlock
	case <-ctx.Done():
		cmd.Process().Kill()
		<-exited
		return Evidence{}, false, context.Cause(ctx)
	case <-time.After(cfg.Watchdog):
	}
	// Not exited: stuck, or only slow (a loaded machine)?
	pending := func() (int, ipc.QueueStats) {
		if e.conn != nil {
			return unread(e.conn), ipc.QueueStats{}
		}
		return 0, e.q.Stats()
	}
	ev, done, err := watchStuck(ctx, cmd.Pid(), exited, pending)
	switch {
	case done && err != nil:
		return Evidence{}, false, fmt.Errorf("join deadlock: child: %w", err)
	case done:
		return Evidence{}, false, nil // it was only slow
	case err != nil:
		cmd.Process().Kill()
		<-exited
		return Evidence{}, false, err
	}
	ev.WaitedFor = time.Since(start)
	ev.WChan = readTrim(filepath.Join("/proc", strconv.Itoa(ev.PID), "wchan"))
	ev.Threads = threadStates(ev.PID)
	cmd.Process().Kill()
	werr := <-exited
	var ce *procs.ChildError
	if errors.As(werr, &ce) && ce.Signal != nil {
		ev.KilledBy = ce.Signal.String()
	} else {
		ev.KilledBy = fmt.Sprint(werr)
	}
	return ev, true, nil
}

// watchStuck watches the child pid, which has not exited, until it is
// stuck: sleeping, with neither its CPU time nor what waits for the parent
// (pending) moved over ev.Quiet, no thread runnable at its end, and
// something waiting for the parent (a child that has sent nothing yet is
// slow to start, not blocked on the parent: on a loaded machine one slept
// through a watch with nothing sent and was called deadlocked). It returns done and the child's error if
// exited delivers first, and ctx's cause if ctx ends first (the caller
// kills the child).
func watchStuck(ctx context.Context, pid int, exited <-chan error, pending func() (int, ipc.QueueStats)) (ev Evidence, done bool, err error) {
	ev = Evidence{PID: pid, Quiet: 200 * time.Millisecond}
	for {
		var before [2]int
		var ticks0 uint64
		before[0], ev.HubStats = pending()
		before[1] = ev.HubStats.Len
		_, ticks0 = procStat(ev.PID)
		select {
		case err := <-exited:
			return Evidence{}, true, err
		case <-ctx.Done():
			return Evidence{}, false, context.Cause(ctx)
		case <-time.After(ev.Quiet):
		}
		ev.State, ev.CPUTicks[1] = procStat(ev.PID)
		ev.CPUTicks[0] = ticks0
		ev.Unread, ev.HubStats = pending()
		waiting := ev.Unread > 0 || ev.HubStats.Len > 0 || ev.HubStats.PendingPuts > 0
		if waiting && ev.State == "S" && ev.CPUTicks[1] == ev.CPUTicks[0] && ev.Unread == before[0] && ev.HubStats.Len == before[1] && !runnable(pid) {
			return ev, false, nil
		}
	}
}

// runnable reports whether a thread of pid is running or waiting for a
// CPU (state R). The process's own state is its main thread's: a child
// busy on other threads, starved on a loaded machine, can earn no clock
// tick over Quiet and still not be stuck.
func runnable(pid int) bool {
	for k := range threadStates(pid) {
		if strings.HasPrefix(k, "R ") {
			return true
		}
	}
	return false
}

// drainFirst reads everything the child sends while waiting for it: the fix.
func drainFirst(ctx context.Context, cfg DeadlockConfig) (int, error) {
	e, err := newEndpoint(cfg)
	if err != nil {
		return 0, err
	}
	defer e.close()
	cmd, err := e.start(ctx, cfg)
	if err != nil {
		return 0, err
	}
	n := 0
	var derr error
	if e.conn != nil {
		// The child closes its end after its last message: read to EOF,
		// then join.
		var m message
		for {
			if derr = e.conn.RecvContext(ctx, &m); derr != nil {
				break
			}
			n++
		}
		if derr == io.EOF {
			derr = nil
		}
		if err := cmd.Wait(); err != nil {
			return n, fmt.Errorf("join deadlock: child: %w", err)
		}
	} else {
		// Drain in a goroutine while joining; once the child is gone,
		// Close lets the drain see io.EOF after the last message.
		qc, err := e.q.Client(ipc.QueueOptions{GetWindow: 64})
		if err != nil {
			cmd.Process().Kill()
			cmd.Wait()
			return 0, err
		}
		drained := make(chan error, 1)
		go func() {
			var m message
			for {
				err := qc.Get(ctx, &m)
				if err != nil {
					if err == io.EOF {
						err = nil
					}
					drained <- err
					return
				}
				n++
			}
		}()
		werr := cmd.Wait()
		e.q.Close()
		derr = <-drained
		qc.Close()
		if werr != nil {
			return n, fmt.Errorf("join deadlock: child: %w", werr)
		}
	}
	if derr != nil {
		return n, fmt.Errorf("join deadlock: drain: %w", derr)
	}
	return n, nil
}

// procStat returns the state letter and utime+stime of pid from
// /proc/PID/stat.
func procStat(pid int) (string, uint64) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "?", 0
	}
	// The command name, in parentheses, may hold spaces: split after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "?", 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return "?", 0
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return f[0], ut + st
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	s := strings.TrimSpace(string(b))
	if s == "" || s == "0" {
		return "-"
	}
	return s
}

// threadStates counts pid's threads by state and wchan.
func threadStates(pid int) map[string]int {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, _ := procStat(tid)
		out[st+" "+readTrim(filepath.Join(dir, e.Name(), "wchan"))]++
	}
	return out
}

// unread returns the bytes waiting in c's receive buffer.
func unread(c *ipc.Conn) int {
	raw, err := c.UnixConn().SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			n = v
		}
	})
	return n
}

// stufferMain sends -n messages of -size bytes through the socket or queue
// at procs.FDControl, then exits.
func stufferMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(StufferRole, flag.ContinueOnError)
	via := fs.String("via", string(ViaSocket), "socket or queue")
	n := fs.Int("n", 0, "messages")
	size := fs.Int("size", 0, "payload bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "channel")
	if err != nil {
		return err
	}
	m := message{Payload: make([]byte, *size)}
	switch Via(*via) {
	case ViaSocket:
		c, err := ipc.FileConn(f)
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range *n {
			m.S = uint32(i)
			if err := c.SendContext(ctx, &m); err != nil {
				return fmt.Errorf("send %d: %w", i, err)
			}
		}
		return c.CloseWrite()
	case ViaQueue:
		qc, err := ipc.OpenQueue(f, ipc.QueueOptions{})
		if err != nil {
			return err
		}
		defer qc.Close()
		for i := range *n {
			m.S = uint32(i)
			if err := qc.Put(ctx, &m); err != nil {
				return fmt.Errorf("put %d: %w", i, err)
			}
		}
		return nil
	}
	f.Close()
	return fmt.Errorf("unknown -via %q", *via)
}

// message is what the join-deadlock child sends, msgpack-encoded: the
// typed, reflective path of a Queue, which this lab does not time.
type message struct {
	//lint:ignore U1000 msgpack reads its tag
	_msgpack struct{} `msgpack:",as_array"`
	P        uint32
	S        uint32
	T        int64
	Payload  []byte
}
