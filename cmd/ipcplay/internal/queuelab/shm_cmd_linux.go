package queuelab

import (
	"context"
	"fmt"
	"strings"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/procs"
	"ipcplay/shm"
)

// shmThroughput is everything one `queue --transport shm` run measured.
type shmThroughput struct {
	cfg               Config
	repeat            int
	ring              *ShmResult      // the shm ring between processes
	bare              *BareRingResult // the bare ring, 1->1
	channel           *Result         // a bare buffered channel, the same topology
	socket            *Result         // the socket ipc.Queue, one round
	futexRT           *RoundTrip      // two rings, futex wake-ups
	spinRT            *RoundTrip      // two rings, spinning
	sockRT            *RoundTrip      // two socket queues
	chanRT            *RoundTrip      // two channels
	futexPer, spinPer float64         // futex system calls per round trip
}

// runShmThroughput runs the throughput lab over a shared-memory ring:
// the ring between processes, and beside it in interleaved rounds the
// bare ring and a bare channel, then once the socket queue and the round
// trips.
func runShmThroughput(ctx context.Context, env *base.Env, out *base.Output, cfg Config, pings, repeat int) error {
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	th := shmThroughput{cfg: cfg, repeat: repeat}
	for i := range repeat {
		prog.Set(float64(i), float64(repeat), "queue: %s messages through a shared ring", base.Count(int64(cfg.Messages)))
		r, err := RunShm(ctx, cfg)
		if err != nil {
			return err
		}
		if th.ring == nil || !r.OK() || (th.ring.OK() && r.MessagesPerSecond() > th.ring.MessagesPerSecond()) {
			th.ring = &r
		}
		b, err := RunBareRing(ctx, cfg.Messages)
		if err != nil {
			return err
		}
		if th.bare == nil || b.MessagesPerSecond() > th.bare.MessagesPerSecond() {
			th.bare = &b
		}
		c, err := RunChannel(ctx, cfg)
		if err != nil {
			return err
		}
		if th.channel == nil || c.MessagesPerSecond() > th.channel.MessagesPerSecond() {
			th.channel = &c
		}
	}
	prog.Set(0, 1, "queue: %s messages through the socket queue", base.Count(int64(cfg.Messages)))
	s, err := Run(ctx, Procs, cfg)
	if err != nil {
		return err
	}
	th.socket = &s
	if pings > 0 {
		prog.Set(0, 1, "queue: %d round trips through two rings", pings)
		var err error
		var futex, spin, sock, ch RoundTrip
		if futex, th.futexPer, err = ShmRoundTrip(ctx, cfg.Size, pings, 0); err != nil {
			return err
		}
		if spin, th.spinPer, err = ShmRoundTrip(ctx, cfg.Size, pings, -1); err != nil {
			return err
		}
		if sock, err = QueueRoundTrip(ctx, cfg.Size, pings); err != nil {
			return err
		}
		if ch, err = ChannelRoundTrip(ctx, cfg.Size, pings); err != nil {
			return err
		}
		th.futexRT, th.spinRT, th.sockRT, th.chanRT = &futex, &spin, &sock, &ch
	}
	prog.Done()
	if err := report.Write(env, out, th.report()); err != nil {
		return err
	}
	return checkRuns([]Result{th.ring.Result, *th.socket})
}

func (th *shmThroughput) report() *report.Report {
	cfg, rc := th.cfg, th.ring.Ring
	r := report.New("queue", fmt.Sprintf("queue --transport shm: %d->%d, %s messages of %s, %s ring of %d slots",
		cfg.Producers, cfg.Consumers, base.Count(int64(cfg.Messages)), base.FormatSize(int64(cfg.Size)), rc.Mode, rc.Slots))
	config(r, cfg)
	r.Config["transport"] = TransportShm
	r.Config["ring_mode"] = rc.Mode.String()
	r.Config["ring_slots"] = rc.Slots
	r.Config["batch"] = cfg.batch()
	r.Config["repeat"] = th.repeat
	topo := fmt.Sprintf("%d->%d", cfg.Producers, cfg.Consumers)
	t := r.Table("runs", "messages per second, in one run",
		report.Col("mode", "mode", report.Text),
		report.Col("what", "what", report.Text),
		report.Col("msgs_per_sec", "msgs", report.PerSec),
		report.Opt("messages", "messages", report.Int, 4),
		report.Opt("exactly_once", "exactly once", report.Bool, 3),
		report.Opt("latency_p50_ns", "p50", report.Micros, 2),
		report.Opt("latency_p99_ns", "p99", report.Micros, 1),
		report.Opt("elapsed_ns", "elapsed", report.Seconds, 5),
	)
	row := func(mode, what string, x *Result) {
		var p50, p99, once any
		if x.Samples > 0 {
			p50, p99 = x.LatencyP50, x.LatencyP99
		}
		if x.Mode != "channel" {
			once = x.OK()
		}
		t.Row(mode, what, x.MessagesPerSecond(), int64(x.Received), once, p50, p99, x.Elapsed)
	}
	row("procs", fmt.Sprintf("shm ring %s %s", rc.Mode, topo), &th.ring.Result)
	t.Row("shm", "bare ring 1->1", th.bare.MessagesPerSecond(), int64(th.bare.Messages), nil, nil, nil, th.bare.Elapsed)
	row("channel", "bare channel "+topo, th.channel)
	row("socket", "ipc.Queue "+topo, th.socket)
	if th.repeat > 1 {
		t.Notef("Best of %d interleaved rounds for the shm ring, the bare ring and the bare channel; one round for the socket queue.", th.repeat)
	}
	t.Notef("Bare ring: %d-byte messages in %d slots of a memfd, one producer process and this process spinning, the index published once per %d messages; no framing, sleeping or crash safety (shm.BareRing). P50 and P99 are Put to Get of one message in %d, with the ring full: queueing delay.",
		shm.BareSlot, bareSlots, shm.BarePublish, sampleMask(cfg.Messages)+1)
	if st := th.ring.Stats; st.LostByProducers+st.LostByConsumers+st.DeadProducers+st.DeadConsumers > 0 {
		r.Warnf("the ring counted %d lost by producers, %d by consumers, %d dead producers, %d dead consumers",
			st.LostByProducers, st.LostByConsumers, st.DeadProducers, st.DeadConsumers)
	}

	if th.futexRT != nil {
		rt := r.Table("round_trip", "one message there and back, alone in flight",
			report.Col("mode", "mode", report.Text),
			report.Col("what", "what", report.Text),
			report.Opt("rounds", "rounds", report.Int, 2),
			report.Col("rtt_p50_ns", "p50", report.Micros),
			report.Col("rtt_p99_ns", "p99", report.Micros),
			report.Opt("futex_per_rtt", "futex/rtt", report.Float, 1),
		)
		rt.Row("procs", "2 rings, futex", int64(th.futexRT.Rounds), th.futexRT.P50, th.futexRT.P99, th.futexPer)
		rt.Row("procs", "2 rings, spinning", int64(th.spinRT.Rounds), th.spinRT.P50, th.spinRT.P99, th.spinPer)
		rt.Row("procs", "2 socket queues", int64(th.sockRT.Rounds), th.sockRT.P50, th.sockRT.P99, nil)
		rt.Row("goroutines", "2 channels", int64(th.chanRT.Rounds), th.chanRT.P50, th.chanRT.P99, nil)
		rt.Notef("Rings: SPSC, 16 slots, an echo child. futex: the default short spin (shm.RingOptions.Spin 0), then a futex sleep; FUTEX/RTT counts both processes' FUTEX_WAIT and FUTEX_WAKE calls. spinning: Spin -1, never sleeping, the two processes pinned to CPUs 0 and 1 when both are allowed.")
	}

	ct := r.CostTable("message")
	var dominant []string
	for _, x := range []struct {
		name string
		res  *Result
	}{{"shm ring", &th.ring.Result}, {"ipc.Queue", th.socket}} {
		if x.res.CostErr != nil {
			r.Warnf("cost of the %s not measured: %v", x.name, x.res.CostErr)
			continue
		}
		b := x.res.Cost.Per(uint64(x.res.Received))
		ct.Add(x.name, b)
		dominant = append(dominant, fmt.Sprintf("%s: %s", x.name, b.Dominant()))
	}
	ct.Finish()
	th.verdict(r, dominant)
	return r
}

func (th *shmThroughput) verdict(r *report.Report, dominant []string) {
	for _, x := range []*Result{&th.ring.Result, th.socket} {
		if !x.OK() {
			r.Verdictf("FAILED: %s lost %d and duplicated %d of %d messages (%d out of order)",
				x.Mode, x.Lost, x.Duplicates, x.Sent, x.Reordered)
			return
		}
	}
	rate := th.ring.MessagesPerSecond()
	ratio := func(x float64) float64 { return rate / max(x, 1) }
	parts := []string{fmt.Sprintf("every message arrived exactly once, in order per producer; the shm ring moved %s msgs/s between processes: %.2fx the bare ring (the aim: at least 1/3), %.1fx a bare channel between goroutines (the aim: at least 3x) and %.1fx the socket ipc.Queue",
		base.Count(int64(rate)), ratio(th.bare.MessagesPerSecond()), ratio(th.channel.MessagesPerSecond()), ratio(th.socket.MessagesPerSecond()))}
	if th.bare.MessagesPerSecond() < rate {
		parts = append(parts, "the bare ring ran slower than the real one: its two processes spin, so on CPUs shared with other work each waits out the other's time slice, where the real ring sleeps on a futex and gives its CPU away")
	}
	if f, s, q, c := th.futexRT, th.spinRT, th.sockRT, th.chanRT; f != nil {
		parts = append(parts, fmt.Sprintf("a lone message's round trip took %s through two rings with futex wake-ups, %s spinning, %s through two socket queues and %s through two channels",
			base.Human(f.P50), base.Human(s.P50), base.Human(q.P50), base.Human(c.P50)))
	}
	r.Verdictf("%s", strings.Join(parts, "; "))
	for _, d := range dominant {
		r.Verdictf("where the time goes, %s", d)
	}
}

// runShmCmd is `queue --transport shm`: the throughput lab only, with the
// processes (the goroutines are its bare channel row).
func runShmCmd(ctx context.Context, env *base.Env, out *base.Output, cfg Config, lab string, mode Mode, pings, repeat int) error {
	if lab != "throughput" {
		return base.Usagef("--transport shm runs the throughput lab, not --lab %s", lab)
	}
	if mode == Goroutines {
		return base.Usagef("--transport shm moves values between processes: use --mode procs or both")
	}
	return runShmThroughput(ctx, env, out, cfg, pings, repeat)
}

// registerShmRoles registers the roles of the shm transport, and those of
// package shm it uses unless a program registered them already.
func registerShmRoles() {
	procs.Register(ShmProducerRole, shmProducerMain)
	procs.Register(ShmConsumerRole, shmConsumerMain)
	for role, main := range map[string]procs.Func{shm.RoleBareProducer: shm.BareProducerMain, shm.RoleRingEcho: shm.RingEchoMain} {
		if !procs.Registered(role) {
			procs.Register(role, main)
		}
	}
}
