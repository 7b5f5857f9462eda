package queuelab

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

// Command returns the queue command.
func Command() *base.Command {
	cmd := &base.Command{
		UsageLine: "queue [flags]",
		Short:     "producers and consumers over an ipc.Queue between processes, against a Go channel",
		Long: `Runs P producers and C consumers that pass M messages (in all) of B payload bytes through a queue of capacity K, then checks that every message arrived exactly once and in order per producer, and measures throughput and the latency from Put to Get.

In procs mode the producers and consumers are child processes and the queue is an ipc.Queue whose hub runs in this process: a Put is acknowledged only when the queue has room, so producers block when consumers fall K behind. With --window W a producer may have W puts on their way before it waits, written in batches, and a consumer asks for W values ahead. In goroutines mode they are goroutines sharing a buffered channel of capacity K.

--lab poison-pill runs the processes three times, changing only how the consumers learn that the producers are done: Close (drain, then io.EOF), one poison pill per consumer put after the last message, and the classic mistake of one pill too few, where a consumer waits until the --watchdog stops it.

--lab join-deadlock shows the classic deadlock of waiting for a child to exit before reading what it sends: the child blocks in Send on a full socket (and then in Put on a full queue of capacity K) while the parent blocks in Wait. After --watchdog the parent looks at the child in /proc (state, wchan, CPU time not moving) and at what is queued, kills it, and runs it again reading while it waits, which is the fix.

Examples:
  ipcplay queue
  ipcplay queue --producers 1 --consumers 1 --messages 1000000
  ipcplay queue --lab poison-pill --watchdog 500ms`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	producers := base.IntFlag(f, "producers", 2, 1, 64, "producers (processes or goroutines)")
	consumers := base.IntFlag(f, "consumers", 2, 1, 64, "consumers (processes or goroutines)")
	messages := base.IntFlag(f, "messages", 100_000, 1, 100_000_000, "messages in all, split among the producers")
	size := base.SizeFlag(f, "size", 64, 0, 1<<20, "payload bytes per message")
	capacity := base.IntFlag(f, "capacity", 1024, 1, 1<<20, "queue capacity (messages)")
	window := base.IntFlag(f, "window", 256, 1, 65536, "procs: puts a producer may have in flight, batched, and gets a consumer asks ahead (1: each waits for the hub)")
	mode := base.ModeFlag(f, base.Both)
	lab := base.ChoiceFlag(f, "lab", "throughput", []string{"throughput", "poison-pill", "join-deadlock"}, "what to show")
	watchdog := base.DurationFlag(f, "watchdog", time.Second, time.Millisecond, 10*time.Minute, "poison-pill and join-deadlock: how long to wait for a child before acting")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		cfg := Config{
			Producers: *producers, Consumers: *consumers, Messages: *messages,
			Size: int(*size), Capacity: *capacity, Window: *window,
		}
		if err := cfg.Validate(); err != nil {
			return base.Usagef("%v", err)
		}
		switch *lab {
		case "join-deadlock":
			return runJoinDeadlock(ctx, env, out, cfg, *watchdog)
		case "poison-pill":
			cfg.Watchdog = *watchdog
			return runQueue(ctx, env, out, cfg, []Mode{Procs},
				[]Shutdown{ShutdownClose, ShutdownPoisonPill, ShutdownPoisonPillShort})
		}
		return runQueue(ctx, env, out, cfg, mode.Modes(), []Shutdown{ShutdownClose})
	}
	return cmd
}

func runQueue(ctx context.Context, env *base.Env, out *base.Output, cfg Config, modes []Mode, shutdowns []Shutdown) error {
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	var runs []Result
	for i, sd := range shutdowns {
		cfg.Shutdown = sd
		for j, m := range modes {
			prog.Set(float64(i*len(modes)+j), float64(len(shutdowns)*len(modes)),
				"queue: %s, %s: %s messages", m, sd, base.Count(int64(cfg.Messages)))
			res, err := Run(ctx, m, cfg)
			if err != nil {
				return err
			}
			runs = append(runs, res)
		}
	}
	prog.Done()
	var r *report.Report
	if len(shutdowns) > 1 {
		r = pillReport(cfg, runs)
	} else {
		r = throughputReport(cfg, runs)
	}
	if err := report.Write(env, out, r); err != nil {
		return err
	}
	for _, r := range runs {
		if !r.OK() {
			return fmt.Errorf("%s: %d sent, %d received, %d lost, %d duplicated, %d out of order",
				r.Mode, r.Sent, r.Received, r.Lost, r.Duplicates, r.Reordered)
		}
	}
	return nil
}

func config(r *report.Report, cfg Config) {
	r.Config["producers"] = cfg.Producers
	r.Config["consumers"] = cfg.Consumers
	r.Config["messages"] = cfg.Messages
	r.Config["size"] = cfg.Size
	r.Config["capacity"] = cfg.Capacity
	r.Config["window"] = cfg.Window
}

func throughputReport(cfg Config, runs []Result) *report.Report {
	r := report.New("queue", fmt.Sprintf("queue: %d producers, %d consumers, %s messages of %s, capacity %d, window %d",
		cfg.Producers, cfg.Consumers, base.Count(int64(cfg.Messages)), base.FormatSize(int64(cfg.Size)), cfg.Capacity, cfg.Window))
	config(r, cfg)
	t := r.Table("runs", "runs",
		report.Col("mode", "mode", report.Text),
		report.Opt("sent", "sent", report.Int, 3),
		report.Opt("received", "received", report.Int, 4),
		report.Col("exactly_once", "exactly once", report.Bool),
		report.Opt("lost", "lost", report.Int, 5),
		report.Opt("duplicates", "dups", report.Int, 6),
		report.Opt("out_of_order", "reordered", report.Int, 7),
		report.Col("msgs_per_sec", "msgs", report.PerSec),
		report.Col("latency_p50_ns", "p50", report.Micros),
		report.Opt("latency_p99_ns", "p99", report.Micros, 1),
		report.Opt("latency_max_ns", "max", report.Micros, 2),
		report.Opt("elapsed_ns", "elapsed", report.Seconds, 8),
		report.Opt("setup_ns", "setup", report.Millis, 2),
	)
	for _, x := range runs {
		t.Row(string(x.Mode), int64(x.Sent), int64(x.Received), x.OK(), int64(x.Lost), int64(x.Duplicates),
			int64(x.Reordered), x.MessagesPerSecond(), x.LatencyP50, x.LatencyP99, x.LatencyMax, x.Elapsed, x.Setup)
	}
	t.Notef("ELAPSED runs from the first send to the last receive; latency is Put to Get on CLOCK_MONOTONIC.")
	for _, x := range runs {
		if !x.OK() {
			r.Verdictf("FAILED: %s lost %d and duplicated %d of %d messages (%d out of order)",
				x.Mode, x.Lost, x.Duplicates, x.Sent, x.Reordered)
			return r
		}
	}
	if len(runs) != 2 {
		x := runs[0]
		r.Verdictf("every message arrived exactly once, in order per producer: %s msgs/s over %s",
			base.Count(int64(x.MessagesPerSecond())), x.Mode)
		return r
	}
	p, g := runs[0], runs[1]
	r.Verdictf("every message arrived exactly once both ways; processes moved %.2fx the messages per second of goroutines, with a median latency %.1fx theirs",
		p.MessagesPerSecond()/max(g.MessagesPerSecond(), 1), float64(p.LatencyP50)/float64(max(g.LatencyP50, 1)))
	return r
}

func pillReport(cfg Config, runs []Result) *report.Report {
	r := report.New("queue", fmt.Sprintf("queue --lab poison-pill: %d producers, %d consumers, %s messages, capacity %d, watchdog %v",
		cfg.Producers, cfg.Consumers, base.Count(int64(cfg.Messages)), cfg.Capacity, cfg.Watchdog))
	config(r, cfg)
	r.Config["watchdog_ns"] = int64(cfg.Watchdog)
	t := r.Table("shutdowns", "how the consumers were told to stop",
		report.Col("shutdown", "shutdown", report.Text),
		report.Col("pills", "pills", report.Int),
		report.Opt("sent", "sent", report.Int, 3),
		report.Opt("received", "received", report.Int, 4),
		report.Col("lost", "lost", report.Int),
		report.Opt("duplicates", "dups", report.Int, 2),
		report.Col("stop_ns", "stop", report.Millis),
		report.Col("ended_by_watchdog", "ended by watchdog", report.Int),
	)
	var cl, pill, short Result
	for _, x := range runs {
		t.Row(string(x.Shutdown), int64(x.Pills), int64(x.Sent), int64(x.Received), int64(x.Lost),
			int64(x.Duplicates), x.StopLatency, int64(x.Terminated))
		switch x.Shutdown {
		case ShutdownClose:
			cl = x
		case ShutdownPoisonPill:
			pill = x
		case ShutdownPoisonPillShort:
			short = x
		}
	}
	t.Notef("STOP runs from the last producer's exit to the last consumer's; ENDED BY WATCHDOG counts consumers terminated after --watchdog.")
	for _, x := range runs {
		if !x.OK() {
			r.Verdictf("FAILED: %s lost %d and duplicated %d of %d messages", x.Shutdown, x.Lost, x.Duplicates, x.Sent)
			return r
		}
	}
	r.Verdictf("Close and %d pills both stopped every consumer (in %s and %s) with nothing lost; one pill short left %d consumer waiting for ever until the watchdog ended it after %s: Close needs no counting",
		pill.Pills, base.Human(cl.StopLatency), base.Human(pill.StopLatency), short.Terminated, base.Human(short.StopLatency))
	return r
}

// runJoinDeadlock runs the join-deadlock lab over a socket and over a queue.
func runJoinDeadlock(ctx context.Context, env *base.Env, out *base.Output, cfg Config, watchdog time.Duration) error {
	// Enough bytes to fill a socket's buffers many times over, and more
	// messages than the queue holds.
	size := max(cfg.Size, 4096)
	configs := []DeadlockConfig{
		{Via: ViaSocket, Messages: (8 << 20) / size, Size: size, Watchdog: watchdog},
		{Via: ViaQueue, Messages: cfg.Capacity + 100, Size: cfg.Size, Capacity: cfg.Capacity, Watchdog: watchdog},
	}
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	var res []DeadlockResult
	for i, dc := range configs {
		prog.Set(float64(i), float64(len(configs)), "queue: join-deadlock over a %s: waiting %v for the child", dc.Via, watchdog)
		r, err := RunJoinDeadlock(ctx, dc)
		if err != nil {
			return err
		}
		res = append(res, r)
	}
	prog.Done()

	r := report.New("queue", fmt.Sprintf("queue --lab join-deadlock: the parent waits for the child's exit before reading; watchdog %v", watchdog))
	r.Config["watchdog_ns"] = int64(watchdog)
	r.Config["capacity"] = cfg.Capacity
	t := r.Table("join_first", "join first: wait for the child, then read",
		report.Col("via", "via", report.Text),
		report.Opt("messages", "messages", report.Int, 3),
		report.Opt("size", "each", report.Bytes, 4),
		report.Col("deadlocked", "deadlock", report.Bool),
		report.Opt("waited_ns", "after", report.Millis, 5),
		report.Col("state", "state", report.Text),
		report.Opt("wchan", "wchan", report.Text, 2),
		report.Opt("cpu_ticks", "cpu ticks", report.Int, 1),
		report.Col("stuck", "stuck in the channel", report.Text),
	)
	fix := r.Table("read_while_waiting", "the fix: read while waiting",
		report.Col("via", "via", report.Text),
		report.Col("ended_by", "first run ended by", report.Text),
		report.Col("received", "received", report.Int),
		report.Col("exit_code", "exit", report.Int),
		report.Col("drain_ns", "took", report.Millis),
	)
	for i, x := range res {
		ev := x.Evidence
		var waited, state, wchan, ticks, stuck, ended any
		if x.Deadlocked {
			waited, state, wchan = ev.WaitedFor, ev.State, ev.WChan
			ticks = int64(ev.CPUTicks[1] - ev.CPUTicks[0])
			if x.Via == ViaSocket {
				stuck = fmt.Sprintf("%s unread in the socket", base.FormatSize(int64(ev.Unread)))
			} else {
				stuck = fmt.Sprintf("%d/%d queued, %d puts waiting", ev.HubStats.Len, configs[i].Capacity, ev.HubStats.PendingPuts)
			}
			ended = ev.KilledBy
		}
		t.Row(string(x.Via), int64(configs[i].Messages), int64(configs[i].Size), x.Deadlocked, waited, state, wchan, ticks, stuck)
		fix.Row(string(x.Via), ended, int64(x.Received), int64(x.ExitCode), x.DrainDuration)
	}
	for _, x := range res {
		if x.Deadlocked && len(x.Evidence.Threads) > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(x.Evidence.Threads)) {
				parts = append(parts, fmt.Sprintf("%q x%d", k, x.Evidence.Threads[k]))
			}
			t.Notef("%s child pid %d threads by state and wchan: %s", x.Via, x.Evidence.PID, strings.Join(parts, ", "))
		}
	}
	r.Notef("a Go program blocked on a socket parks its goroutine; its threads sleep in futex or epoll waits, so the evidence is the sleeping state, CPU ticks not moving while watched, and the bytes or values waiting for a reader")
	verdict := "joining first deadlocked over both the socket and the queue, and the watchdog ended it; reading while waiting received every message and the child exited 0"
	for i, x := range res {
		if !x.Deadlocked {
			verdict = fmt.Sprintf("over the %s, everything fitted in the buffers and the child exited: send more to see the deadlock", x.Via)
		} else if x.Received != configs[i].Messages {
			return fmt.Errorf("join deadlock over %s: drain received %d of %d", x.Via, x.Received, configs[i].Messages)
		}
	}
	r.Verdictf("%s", verdict)
	return report.Write(env, out, r)
}
