//go:build linux

package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"ipcplay/cmd/ipcplay/internal/queuelab"
)

var queueCommand = &command{
	name:  "queue",
	short: "producers and consumers over an ipc.Queue between processes, against a Go channel",
	run:   runQueue,
}

const queueUsage = "queue [--producers P] [--consumers C] [--messages M] [--size B] [--capacity K] [--window W] [--mode processes|goroutines|both] [--lab throughput|poison-pill|join-deadlock] [--json]"

const queueLong = `
Runs P producers and C consumers that pass M messages (in all) of B payload
bytes through a queue of capacity K, then checks that every message arrived
exactly once and in order per producer, and measures throughput and the
latency from Put to Get.

In processes mode the producers and consumers are child processes and the
queue is an ipc.Queue whose hub runs in this process: a Put is acknowledged
only when the queue has room, so producers block when consumers fall K
behind. With --window W a producer may have W puts on their way before it
waits, written in batches, and a consumer asks for W values ahead. In goroutines mode they are goroutines sharing a buffered channel of
capacity K. Send and receive times come from CLOCK_MONOTONIC, which every
process shares.

--lab poison-pill runs the processes three times, changing only how the
consumers learn that the producers are done: Close (drain, then io.EOF), one
poison pill per consumer put after the last message, and the classic mistake
of one pill too few, where a consumer waits until the --watchdog stops it.

--lab join-deadlock shows the classic deadlock of waiting for a child to exit
before reading what it sends: the child blocks in Send on a full socket (and
then in Put on a full queue of capacity K) while the parent blocks in Wait.
After --watchdog the parent looks at the child in /proc (state, wchan, CPU
time not moving) and at what is queued, kills it, and runs it again reading
while it waits, which is the fix.`

func runQueue(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "queue", queueUsage, queueLong)
	producers := fs.Int("producers", 2, "producers (processes or goroutines)")
	consumers := fs.Int("consumers", 2, "consumers (processes or goroutines)")
	messages := fs.Int("messages", 100_000, "messages in all, split among the producers")
	size := fs.Int("size", 64, "payload bytes per message")
	capacity := fs.Int("capacity", 1024, "queue capacity (messages)")
	window := fs.Int("window", 256, "processes: puts a producer may have in flight, batched, and gets a consumer asks ahead (1: each waits for the hub)")
	mode := fs.String("mode", "both", "where producers and consumers run: processes, goroutines, or both")
	lab := fs.String("lab", "throughput", "what to show: throughput, poison-pill (shutdown by pills against Close), or join-deadlock")
	watchdog := fs.Duration("watchdog", time.Second, "poison-pill and join-deadlock labs: how long to wait for a child before acting")
	asJSON := fs.Bool("json", false, "print one JSON document instead of a table")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	cfg := queuelab.Config{
		Producers: *producers, Consumers: *consumers, Messages: *messages,
		Size: *size, Capacity: *capacity, Window: *window,
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	if *window < 1 {
		return usagef("--window %d: want at least 1", *window)
	}
	if *watchdog <= 0 {
		return usagef("--watchdog %v: want a positive duration", *watchdog)
	}
	var shutdowns []queuelab.Shutdown
	switch *lab {
	case "join-deadlock":
		return runJoinDeadlock(ctx, env, cfg, *watchdog, *asJSON)
	case "throughput":
		shutdowns = []queuelab.Shutdown{queuelab.ShutdownClose}
	case "poison-pill":
		shutdowns = []queuelab.Shutdown{queuelab.ShutdownClose, queuelab.ShutdownPoisonPill, queuelab.ShutdownPoisonPillShort}
		*mode = "processes"
		cfg.Watchdog = *watchdog
	default:
		return usagef("--lab %q: want throughput, poison-pill or join-deadlock", *lab)
	}
	var modes []queuelab.Mode
	switch *mode {
	case "both":
		modes = []queuelab.Mode{queuelab.Procs, queuelab.Goroutines}
	case "processes", "procs":
		modes = []queuelab.Mode{queuelab.Procs}
	case "goroutines":
		modes = []queuelab.Mode{queuelab.Goroutines}
	default:
		return usagef("--mode %q: want processes, goroutines or both", *mode)
	}

	prog := env.newProgress(!*asJSON)
	defer prog.done()
	var runs []queuelab.Result
	for _, sd := range shutdowns {
		cfg.Shutdown = sd
		for _, m := range modes {
			prog.set("queue: %s, %s: %s messages", m, sd, count(uint64(cfg.Messages)))
			res, err := queuelab.Run(ctx, m, cfg)
			if err != nil {
				return err
			}
			runs = append(runs, res)
		}
	}
	prog.done()
	switch {
	case *asJSON:
		if err := writeJSON(env.stdout, queueJSON(*lab, cfg, runs)); err != nil {
			return err
		}
	case *lab == "poison-pill":
		if err := renderPoisonPill(env, cfg, runs); err != nil {
			return err
		}
	default:
		if err := renderQueue(env, cfg, runs); err != nil {
			return err
		}
	}
	for _, r := range runs {
		if !r.OK() {
			return fmt.Errorf("%s: %d sent, %d received, %d lost, %d duplicated, %d out of order",
				r.Mode, r.Sent, r.Received, r.Lost, r.Duplicates, r.Reordered)
		}
	}
	return nil
}

func renderQueue(env *env, cfg queuelab.Config, runs []queuelab.Result) error {
	w := env.stdout
	fmt.Fprintf(w, "queue: %d producers, %d consumers, %s messages of %d bytes, capacity %d, put window %d (%s)\n\n",
		cfg.Producers, cfg.Consumers, count(uint64(cfg.Messages)), cfg.Size, cfg.Capacity, cfg.Window, thisSystem())
	t := newTable(w, "MODE", "SENT", "RECEIVED", "LOST", "DUPLICATES", "OUT OF ORDER", "SECONDS", "MSGS/s", "P50 µs", "P99 µs", "MAX µs", "SETUP ms")
	for _, r := range runs {
		t.row(string(r.Mode), count(uint64(r.Sent)), count(uint64(r.Received)), fmt.Sprint(r.Lost),
			fmt.Sprint(r.Duplicates), fmt.Sprint(r.Reordered), seconds(r.Elapsed),
			count(uint64(r.MessagesPerSecond())), micros(r.LatencyP50), micros(r.LatencyP99),
			micros(r.LatencyMax), millis(r.Setup))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "SECONDS runs from the first send to the last receive; latency is Put to Get on CLOCK_MONOTONIC.")
	fmt.Fprintf(w, "\n%s\n", queueVerdict(runs))
	return nil
}

func queueVerdict(runs []queuelab.Result) string {
	for _, r := range runs {
		if !r.OK() {
			return fmt.Sprintf("verdict: FAILED: %s lost %d and duplicated %d of %d messages (%d out of order).",
				r.Mode, r.Lost, r.Duplicates, r.Sent, r.Reordered)
		}
	}
	if len(runs) != 2 {
		r := runs[0]
		return fmt.Sprintf("verdict: every message arrived exactly once, in order per producer: %s msgs/s over %s.",
			count(uint64(r.MessagesPerSecond())), r.Mode)
	}
	p, g := runs[0], runs[1]
	return fmt.Sprintf("verdict: every message arrived exactly once both ways; processes moved %.2fx the messages per second "+
		"of goroutines, with a median latency %.1fx theirs: each message crosses the kernel twice and waits for the hub.",
		p.MessagesPerSecond()/max(g.MessagesPerSecond(), 1), float64(p.LatencyP50)/float64(max(g.LatencyP50, 1)))
}

func renderPoisonPill(env *env, cfg queuelab.Config, runs []queuelab.Result) error {
	w := env.stdout
	fmt.Fprintf(w, "queue --lab poison-pill: %d producers, %d consumers, %s messages, capacity %d, watchdog %v (%s)\n\n",
		cfg.Producers, cfg.Consumers, count(uint64(cfg.Messages)), cfg.Capacity, cfg.Watchdog, thisSystem())
	t := newTable(w, "SHUTDOWN", "PILLS", "SENT", "RECEIVED", "LOST", "DUPLICATES", "STOP ms", "TERMINATED BY WATCHDOG")
	for _, r := range runs {
		t.row(string(r.Shutdown), fmt.Sprint(r.Pills), count(uint64(r.Sent)), count(uint64(r.Received)),
			fmt.Sprint(r.Lost), fmt.Sprint(r.Duplicates), millis(r.StopLatency), fmt.Sprint(r.Terminated))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "STOP runs from the last producer's exit to the last consumer's.")
	fmt.Fprintf(w, "\n%s\n", pillVerdict(runs))
	return nil
}

func pillVerdict(runs []queuelab.Result) string {
	var cl, pill, short queuelab.Result
	for _, r := range runs {
		if !r.OK() {
			return queueVerdict([]queuelab.Result{r})
		}
		switch r.Shutdown {
		case queuelab.ShutdownClose:
			cl = r
		case queuelab.ShutdownPoisonPill:
			pill = r
		case queuelab.ShutdownPoisonPillShort:
			short = r
		}
	}
	return fmt.Sprintf("verdict: Close and %d pills both stopped every consumer (%s ms and %s ms) with nothing lost; "+
		"one pill short left %d consumer waiting for ever until the watchdog ended it after %s ms. Close needs no counting.",
		pill.Pills, millis(cl.StopLatency), millis(pill.StopLatency), short.Terminated, millis(short.StopLatency))
}

type queueDoc struct {
	SchemaVersion int            `json:"schema_version"`
	Lab           string         `json:"lab"`
	Producers     int            `json:"producers"`
	Consumers     int            `json:"consumers"`
	Messages      int            `json:"messages"`
	Size          int            `json:"size"`
	Capacity      int            `json:"capacity"`
	Window        int            `json:"window"`
	System        system         `json:"system"`
	Runs          []queueRunJSON `json:"runs"`
}

type queueRunJSON struct {
	Mode              string  `json:"mode"`
	Sent              int     `json:"sent"`
	Received          int     `json:"received"`
	Duplicates        int     `json:"duplicates"`
	Lost              int     `json:"lost"`
	OutOfOrder        int     `json:"out_of_order"`
	ExactlyOnce       bool    `json:"exactly_once"`
	Seconds           float64 `json:"seconds"`
	SetupSeconds      float64 `json:"setup_seconds"`
	MessagesPerSecond float64 `json:"messages_per_second"`
	LatencyP50us      float64 `json:"latency_p50_us"`
	LatencyP99us      float64 `json:"latency_p99_us"`
	LatencyMaxus      float64 `json:"latency_max_us"`
	Shutdown          string  `json:"shutdown"`
	Pills             int     `json:"pills"`
	StopSeconds       float64 `json:"stop_seconds"`
	Terminated        int     `json:"terminated"`
}

func queueJSON(lab string, cfg queuelab.Config, runs []queuelab.Result) queueDoc {
	doc := queueDoc{
		SchemaVersion: 1, Lab: lab, Producers: cfg.Producers, Consumers: cfg.Consumers, Messages: cfg.Messages,
		Size: cfg.Size, Capacity: cfg.Capacity, Window: cfg.Window, System: thisSystem(), Runs: []queueRunJSON{},
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, r := range runs {
		doc.Runs = append(doc.Runs, queueRunJSON{
			Mode: string(r.Mode), Sent: r.Sent, Received: r.Received, Duplicates: r.Duplicates, Lost: r.Lost,
			OutOfOrder: r.Reordered, ExactlyOnce: r.OK(), Seconds: r.Elapsed.Seconds(),
			SetupSeconds: r.Setup.Seconds(), MessagesPerSecond: r.MessagesPerSecond(),
			LatencyP50us: us(r.LatencyP50), LatencyP99us: us(r.LatencyP99), LatencyMaxus: us(r.LatencyMax),
			Shutdown: string(r.Shutdown), Pills: r.Pills, StopSeconds: r.StopLatency.Seconds(), Terminated: r.Terminated,
		})
	}
	return doc
}

// runJoinDeadlock runs the join-deadlock lab over a socket and over a queue.
func runJoinDeadlock(ctx context.Context, env *env, cfg queuelab.Config, watchdog time.Duration, asJSON bool) error {
	// Enough bytes to fill a socket's buffers many times over, and more
	// messages than the queue holds.
	size := max(cfg.Size, 4096)
	configs := []queuelab.DeadlockConfig{
		{Via: queuelab.ViaSocket, Messages: (8 << 20) / size, Size: size, Watchdog: watchdog},
		{Via: queuelab.ViaQueue, Messages: cfg.Capacity + 100, Size: cfg.Size, Capacity: cfg.Capacity, Watchdog: watchdog},
	}
	prog := env.newProgress(!asJSON)
	defer prog.done()
	var res []queuelab.DeadlockResult
	for _, dc := range configs {
		prog.set("queue: join-deadlock over a %s: waiting %v for the child", dc.Via, watchdog)
		r, err := queuelab.RunJoinDeadlock(ctx, dc)
		if err != nil {
			return err
		}
		res = append(res, r)
	}
	prog.done()
	if asJSON {
		return writeJSON(env.stdout, joinDeadlockJSON(configs, res))
	}
	w := env.stdout
	fmt.Fprintf(w, "queue --lab join-deadlock: the parent waits for the child's exit before reading; watchdog %v (%s)\n\n", watchdog, thisSystem())
	t := newTable(w, "VIA", "MESSAGES", "BYTES EACH", "JOIN FIRST", "CHILD STATE", "WCHAN", "CPU TICKS WHILE WATCHED", "STUCK IN THE PIPE", "ENDED BY", "DRAIN FIRST", "DRAIN ms")
	for i, r := range res {
		ev := r.Evidence
		join, state, wchan, ticks, stuck, ended := "exited", "-", "-", "-", "-", "-"
		if r.Deadlocked {
			join = fmt.Sprintf("DEADLOCK after %s ms", millis(ev.WaitedFor))
			state, wchan = ev.State, ev.WChan
			ticks = fmt.Sprintf("%d in %s ms", ev.CPUTicks[1]-ev.CPUTicks[0], millis(ev.Quiet))
			if r.Via == queuelab.ViaSocket {
				stuck = fmt.Sprintf("%s bytes unread", count(uint64(ev.Unread)))
			} else {
				stuck = fmt.Sprintf("%d/%d queued, %d put waiting", ev.HubStats.Len, configs[i].Capacity, ev.HubStats.PendingPuts)
			}
			ended = ev.KilledBy
		}
		drain := fmt.Sprintf("%s received, exit %d", count(uint64(r.Received)), r.ExitCode)
		t.row(string(r.Via), count(uint64(configs[i].Messages)), fmt.Sprint(configs[i].Size), join, state, wchan, ticks, stuck, ended, drain, millis(r.DrainDuration))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, r := range res {
		if r.Deadlocked && len(r.Evidence.Threads) > 0 {
			fmt.Fprintf(w, "%s child pid %d threads by state and wchan:", r.Via, r.Evidence.PID)
			for _, k := range slices.Sorted(maps.Keys(r.Evidence.Threads)) {
				fmt.Fprintf(w, " %q x%d", k, r.Evidence.Threads[k])
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w, "A Go program blocked on a socket parks its goroutine; its threads sleep in futex or epoll waits, so")
	fmt.Fprintln(w, "the evidence is the sleeping state, CPU time not moving, and the bytes or values waiting for a reader.")
	verdict := "verdict: joining first deadlocked over both the socket and the queue, and the watchdog ended it; " +
		"reading while waiting received every message and the child exited 0."
	for i, r := range res {
		if !r.Deadlocked {
			verdict = fmt.Sprintf("verdict: over the %s, everything fitted in the buffers and the child exited: send more to see the deadlock.", r.Via)
		} else if r.Received != configs[i].Messages {
			return fmt.Errorf("join deadlock over %s: drain received %d of %d", r.Via, r.Received, configs[i].Messages)
		}
	}
	fmt.Fprintf(w, "\n%s\n", verdict)
	return nil
}

type deadlockDoc struct {
	SchemaVersion int               `json:"schema_version"`
	Lab           string            `json:"lab"`
	System        system            `json:"system"`
	Runs          []deadlockRunJSON `json:"runs"`
}

type deadlockRunJSON struct {
	Via             string         `json:"via"`
	Messages        int            `json:"messages"`
	Size            int            `json:"size"`
	Capacity        int            `json:"capacity,omitempty"`
	Deadlocked      bool           `json:"deadlocked"`
	WaitedSeconds   float64        `json:"waited_seconds"`
	PID             int            `json:"pid"`
	State           string         `json:"state"`
	WChan           string         `json:"wchan"`
	Threads         map[string]int `json:"threads"`
	CPUTicksWatched uint64         `json:"cpu_ticks_while_watched"`
	UnreadBytes     int            `json:"unread_bytes"`
	QueueLen        int            `json:"queue_len"`
	PendingPuts     int            `json:"pending_puts"`
	KilledBy        string         `json:"killed_by"`
	DrainReceived   int            `json:"drain_received"`
	DrainExitCode   int            `json:"drain_exit_code"`
	DrainSeconds    float64        `json:"drain_seconds"`
}

func joinDeadlockJSON(configs []queuelab.DeadlockConfig, res []queuelab.DeadlockResult) deadlockDoc {
	doc := deadlockDoc{SchemaVersion: 1, Lab: "join-deadlock", System: thisSystem(), Runs: []deadlockRunJSON{}}
	for i, r := range res {
		ev := r.Evidence
		doc.Runs = append(doc.Runs, deadlockRunJSON{
			Via: string(r.Via), Messages: configs[i].Messages, Size: configs[i].Size, Capacity: configs[i].Capacity,
			Deadlocked: r.Deadlocked, WaitedSeconds: ev.WaitedFor.Seconds(), PID: ev.PID, State: ev.State,
			WChan: ev.WChan, Threads: ev.Threads, CPUTicksWatched: ev.CPUTicks[1] - ev.CPUTicks[0],
			UnreadBytes: ev.Unread, QueueLen: ev.HubStats.Len, PendingPuts: ev.HubStats.PendingPuts,
			KilledBy: ev.KilledBy, DrainReceived: r.Received, DrainExitCode: r.ExitCode, DrainSeconds: r.DrainDuration.Seconds(),
		})
	}
	return doc
}
