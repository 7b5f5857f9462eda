package queuelab

import (
	"context"
	"fmt"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/ipc"
	"ipcplay/procs"
	"ipcplay/procs/cost"
)

// Mode says where producers and consumers run: ipcplay's one Mode.
type Mode = base.Mode

const (
	Procs      = base.Procs      // child processes over an ipc.Queue
	Goroutines = base.Goroutines // goroutines over a buffered Go channel
)

// The child roles of the lab; RegisterRoles registers them.
const (
	ProducerRole = "ipcplay-queue-producer"
	ConsumerRole = "ipcplay-queue-consumer"
	EchoRole     = "ipcplay-queue-echo"
)

// RegisterRoles registers the lab's child roles with procs.
func RegisterRoles() {
	procs.Register(ProducerRole, producerMain)
	procs.Register(ConsumerRole, consumerMain)
	procs.Register(StufferRole, stufferMain)
	procs.Register(EchoRole, echoMain)
	registerShmRoles()
	if !procs.Registered(ipc.RawFramesRole) {
		procs.Register(ipc.RawFramesRole, ipc.RawFramesMain)
	}
	if !procs.Registered(ipc.RoleQueueRecovery) {
		procs.Register(ipc.RoleQueueRecovery, ipc.QueueRecoveryChild)
	}
}

// Config describes one run.
type Config struct {
	Producers int           // producer processes or goroutines
	Consumers int           // consumer processes or goroutines
	Messages  int           // messages in all, split evenly among producers
	Size      int           // bytes per value, at least 16 (producer, sequence, time stamp)
	Capacity  int           // queue (or channel) capacity
	Shutdown  Shutdown      // how consumers are told to stop (processes only); "" is ShutdownClose
	Watchdog  time.Duration // how long consumers may take to stop before they are terminated; 0: no limit
	Window    int           // puts in flight per producer and gets asked ahead per consumer (ipc.QueueOptions); <= 1: each waits for the hub
	Batch     int           // values per PutBatch and GetBatch in a child; 0: min(256, Window)
	Lanes     bool          // procs: ipc.Queue.EnableLanes, values straight from a producer to a consumer where the topology allows
}

// Validate reports a Config that cannot run.
func (c Config) Validate() error {
	switch {
	case c.Producers < 1:
		return fmt.Errorf("producers %d: want at least 1", c.Producers)
	case c.Consumers < 1:
		return fmt.Errorf("consumers %d: want at least 1", c.Consumers)
	case c.Messages < c.Producers:
		return fmt.Errorf("messages %d: want at least one per producer (%d)", c.Messages, c.Producers)
	case c.Size < valueHead || c.Size > MaxSize:
		return fmt.Errorf("size %d: want %d to %d (a value holds its producer, sequence number and a time stamp)", c.Size, valueHead, MaxSize)
	case c.Capacity < 1:
		return fmt.Errorf("capacity %d: want at least 1", c.Capacity)
	case c.Window < 0 || c.Window > ipc.MaxQueueWindow:
		return fmt.Errorf("window %d: want 0 to %d", c.Window, ipc.MaxQueueWindow)
	case c.Batch < 0 || c.Batch > maxBatch:
		return fmt.Errorf("batch %d: want 0 to %d", c.Batch, maxBatch)
	case int64(c.Messages)*int64(c.Consumers) > maxBits:
		return fmt.Errorf("messages %d x consumers %d: the exactly-once check keeps a bit per message per consumer, at most %d bits", c.Messages, c.Consumers, maxBits)
	}
	return nil
}

// Limits of a Config.
const (
	MaxSize  = 4096    // bytes per value
	maxBatch = 1 << 14 // values per PutBatch or GetBatch
	maxBits  = 1 << 31 // messages x consumers: 256 MiB of bitmaps
)

// batch returns the values per PutBatch and GetBatch.
func (c Config) batch() int {
	if c.Batch > 0 {
		return c.Batch
	}
	return min(256, max(1, c.Window))
}

// share returns how many messages producer p sends.
func (c Config) share(p int) int {
	n := c.Messages / c.Producers
	if p < c.Messages%c.Producers {
		n++
	}
	return n
}

// Shutdown is how the consumers learn that no more messages will come.
type Shutdown string

const (
	// ShutdownClose closes the queue: consumers drain it and get io.EOF.
	ShutdownClose Shutdown = "close"
	// ShutdownPoisonPill puts one "pill" message per consumer after the
	// last message; a consumer that takes a pill stops.
	ShutdownPoisonPill Shutdown = "poison-pill"
	// ShutdownPoisonPillShort is the classic mistake: one pill fewer than
	// consumers, so one consumer waits for ever (until the watchdog).
	ShutdownPoisonPillShort Shutdown = "poison-pill-short"
)

// pillP is the producer number of a poison pill.
const pillP = ^uint32(0)

// Result is what one run measured.
type Result struct {
	Mode       Mode
	Sent       int           // messages the producers reported sent
	Received   int           // messages the consumers got, duplicates included
	Duplicates int           // messages received more than once (extra copies)
	Lost       int           // messages sent and never received
	Reordered  int           // messages a consumer got before an earlier one of the same producer
	Elapsed    time.Duration // first send to last receive
	Setup      time.Duration // starting the producers and consumers
	Samples    int           // values that carried a time stamp (one in sampleMask+1)
	LatencyP50 time.Duration // of the sampled values, from Put to Get
	LatencyP99 time.Duration
	LatencyMax time.Duration

	// Cost is what every process involved spent while the values moved
	// (procs: the children and this process, from ready to reaped;
	// goroutines: this process); CostErr says why it is missing.
	Cost    cost.Sample
	CostErr error

	Shutdown    Shutdown      // how consumers were stopped
	Pills       int           // poison pills put
	StopLatency time.Duration // from the last producer's exit to the last consumer's
	Terminated  int           // consumers the watchdog had to stop
}

// MessagesPerSecond is the received messages over the elapsed time.
func (r Result) MessagesPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Received) / r.Elapsed.Seconds()
}

// OK reports whether every message arrived exactly once and in order per
// producer.
func (r Result) OK() bool {
	return r.Lost == 0 && r.Duplicates == 0 && r.Reordered == 0 && r.Received == r.Sent
}

// Run runs cfg in mode and checks and measures what arrived.
func Run(ctx context.Context, mode Mode, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	switch mode {
	case Procs:
		return runProcs(ctx, cfg)
	case Goroutines:
		return runGoroutines(ctx, cfg)
	}
	return Result{}, fmt.Errorf("queue lab: unknown mode %q", mode)
}
