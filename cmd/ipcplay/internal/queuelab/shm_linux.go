package queuelab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strconv"
	"time"

	"ipcplay/procs"
	"ipcplay/shm"
)

// The shm transport: the same values and checks as the socket queue, but
// producers and consumers share a ring in a memfd (shm.Ring) and no
// process sits between them. One producer and one consumer use an SPSC
// ring, more use an MPMC one. The parent makes the region, starts the
// children with it at procs.FDShm and the start gate at procs.FDExtra,
// and reads their reports as with the socket.

// The child roles of the shm transport.
const (
	ShmProducerRole = "ipcplay-queue-shm-producer"
	ShmConsumerRole = "ipcplay-queue-shm-consumer"
)

// Transports of the procs side.
const (
	TransportSocket = "socket" // an ipc.Queue whose hub runs in the parent
	TransportShm    = "shm"    // a shared-memory ring (shm.Ring)
)

// maxShmRegion bounds the ring's memory: --capacity is rounded up to a
// power of two, then halved while the ring would take more.
const maxShmRegion = 64 << 20

// shmRingConfig returns the ring cfg runs on.
func shmRingConfig(cfg Config) shm.RingConfig {
	rc := shm.RingConfig{Mode: shm.SPSC, MaxMessage: cfg.Size, MaxProducers: cfg.Producers + 1, MaxConsumers: cfg.Consumers}
	if cfg.Producers > 1 || cfg.Consumers > 1 {
		rc.Mode = shm.MPMC
	}
	rc.Slots = 1 << bits.Len(uint(max(cfg.Capacity, 2)-1))
	for rc.Slots > 2 {
		if n, err := shm.RingSize(rc); err == nil && n <= maxShmRegion {
			break
		}
		rc.Slots /= 2
	}
	return rc
}

// pageRound rounds n up to whole pages.
func pageRound(n int) int { return (n + 4095) &^ 4095 }

// ShmResult is a Result of the shm transport and what the ring says.
type ShmResult struct {
	Result
	Ring  shm.RingConfig
	Stats shm.RingStats
}

// RunShm runs cfg's producers and consumers as child processes over a
// shared-memory ring, with the socket transport's checks.
func RunShm(ctx context.Context, cfg Config) (ShmResult, error) {
	if err := cfg.Validate(); err != nil {
		return ShmResult{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	rc := shmRingConfig(cfg)
	size, err := shm.RingSize(rc)
	if err != nil {
		return ShmResult{}, fmt.Errorf("queue lab: %w", err)
	}
	reg, err := shm.New("ipcplay-queue-ring", pageRound(size))
	if err != nil {
		return ShmResult{}, fmt.Errorf("queue lab: %w", err)
	}
	defer reg.Close()
	ring, err := shm.MakeRing(reg.Bytes(), 0, rc)
	if err != nil {
		return ShmResult{}, fmt.Errorf("queue lab: %w", err)
	}
	// In an MPMC ring the parent holds a producer entry until every
	// producer child is reaped, so that consumers see io.EOF only then
	// (a fast producer that closes would otherwise end it for all).
	var hold *shm.RingProducer
	if rc.Mode == shm.MPMC {
		if hold, err = ring.Producer(shm.RingOptions{}); err != nil {
			return ShmResult{}, fmt.Errorf("queue lab: %w", err)
		}
		defer func() {
			if hold != nil {
				hold.Close()
			}
		}()
	}
	var g gate
	defer g.close()
	var k children
	wait := k.wait
	defer func() {
		cancel()
		k.reapRest()
	}()
	common := []string{"-producers", strconv.Itoa(cfg.Producers), "-messages", strconv.Itoa(cfg.Messages),
		"-size", strconv.Itoa(cfg.Size), "-batch", strconv.Itoa(cfg.batch()), "-region", strconv.Itoa(reg.Len())}
	startChild := func(i int, stdout io.Writer, role string, args ...string) (*procs.Cmd, error) {
		cmd := procs.Command(ctx, role, args...)
		cmd.Index = i
		if err := g.add(cmd); err != nil {
			return nil, err
		}
		cmd.ExtraFiles[procs.FDShm-3] = reg.File() // shared by all: not handed over
		cmd.Stdout = stdout
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s %d: %w", role, i, err)
		}
		k.add(cmd)
		return cmd, nil
	}
	outs := make([]*bytes.Buffer, cfg.Consumers)
	var consumers, producers []*procs.Cmd
	for i := range cfg.Consumers {
		outs[i] = new(bytes.Buffer)
		c, err := startChild(i, outs[i], ShmConsumerRole, common...)
		if err != nil {
			return ShmResult{}, err
		}
		consumers = append(consumers, c)
	}
	sentOut := make([]*bytes.Buffer, cfg.Producers)
	for i := range cfg.Producers {
		sentOut[i] = new(bytes.Buffer)
		c, err := startChild(i, sentOut[i], ShmProducerRole, append([]string{"-id", strconv.Itoa(i)}, common...)...)
		if err != nil {
			return ShmResult{}, err
		}
		producers = append(producers, c)
	}
	setup, m, err := g.release(k.cmds, wait, start)
	if err != nil {
		return ShmResult{}, err
	}
	defer m.close()
	exited := m.exited

	var errs []error
	for _, c := range producers {
		if err := wait(c); err != nil {
			errs = append(errs, err)
		}
		exited(c)
	}
	if hold != nil {
		errs = append(errs, hold.Close())
		hold = nil
	}
	for _, c := range consumers {
		if err := wait(c); err != nil {
			errs = append(errs, err)
		}
		exited(c)
	}
	res := ShmResult{Result: Result{Mode: Procs, Setup: setup, Shutdown: ShutdownClose}, Ring: rc, Stats: ring.Stats()}
	res.Cost, res.CostErr = m.stop()
	if err := errors.Join(errs...); err != nil {
		return ShmResult{}, fmt.Errorf("queue lab: %w", err)
	}
	first := int64(0)
	for i, b := range sentOut {
		if b.Len() != 16 {
			return ShmResult{}, fmt.Errorf("queue lab: producer %d reported %d bytes, want 16", i, b.Len())
		}
		res.Sent += int(binary.LittleEndian.Uint64(b.Bytes()))
		if t := int64(binary.LittleEndian.Uint64(b.Bytes()[8:])); first == 0 || t < first {
			first = t
		}
	}
	cks := make([]*checker, cfg.Consumers)
	last := int64(0)
	for i, out := range outs {
		ck, err := readChecker(cfg, out.Bytes())
		if err != nil {
			return ShmResult{}, fmt.Errorf("queue lab: consumer %d: %w", i, err)
		}
		cks[i] = ck
		last = max(last, ck.last)
	}
	tally(cfg, cks, &res.Result)
	if last > first {
		res.Elapsed = time.Duration(last - first)
	}
	// Each value is copied into its slot (slot word included) once and out
	// of it once, in user space: nothing crosses the kernel.
	res.Cost.Bytes = int64(res.Received) * int64(8+cfg.Size)
	return res, nil
}

// shmChild opens the ring every shm child shares: the region at
// procs.FDShm, of -region bytes, with the ring at its start.
func shmChild(regionSize int) (*shm.Region, *shm.Ring, error) {
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "queue ring")
	if err != nil {
		return nil, nil, err
	}
	reg, err := shm.Open(f, regionSize)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	ring, err := shm.OpenRing(reg.Bytes(), 0)
	if err != nil {
		reg.Close()
		return nil, nil, err
	}
	return reg, ring, nil
}

func shmFlags(role string, args []string, more func(*flag.FlagSet)) (Config, int, error) {
	var region int
	cfg, err := childFlags(role, args, func(fs *flag.FlagSet) {
		fs.IntVar(&region, "region", 0, "bytes of the shared region")
		if more != nil {
			more(fs)
		}
	})
	return cfg, region, err
}

// shmProducerMain puts its share of the values into the ring, SendBatch
// at a time, and writes how many it sent and when it sent the first
// (nanotime) on stdout, as two uint64s: producerMain over a ring.
func shmProducerMain(ctx context.Context, args []string) error {
	var id int
	cfg, region, err := shmFlags(ShmProducerRole, args, func(fs *flag.FlagSet) { fs.IntVar(&id, "id", 0, "producer number") })
	if err != nil {
		return err
	}
	reg, ring, err := shmChild(region)
	if err != nil {
		return err
	}
	defer reg.Close()
	p, err := ring.Producer(shm.RingOptions{})
	if err != nil {
		return err
	}
	defer func() {
		if p != nil {
			p.Close()
		}
	}()
	n, mask := cfg.share(id), sampleMask(cfg.Messages)
	vs := make([][]byte, cfg.Batch)
	buf := make([]byte, cfg.Batch*cfg.Size)
	for i := range vs {
		vs[i] = buf[i*cfg.Size : (i+1)*cfg.Size]
	}
	if err := awaitGo(); err != nil {
		return err
	}
	first := nanotime()
	for s := 0; s < n; {
		k := min(len(vs), n-s)
		for j, v := range vs[:k] {
			putValue(v, uint32(id), uint32(s+j), mask)
		}
		sent, err := p.SendBatch(ctx, vs[:k])
		s += sent
		if err != nil {
			return fmt.Errorf("producer %d: send %d: %w", id, s, err)
		}
	}
	err = p.Close()
	p = nil
	if err != nil {
		return fmt.Errorf("producer %d: close: %w", id, err)
	}
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	binary.LittleEndian.PutUint64(b[8:], uint64(first))
	_, err = os.Stdout.Write(b[:])
	return err
}

// shmConsumerMain takes values from the ring, RecvBatch at a time, until
// io.EOF, checks each, and writes its checker on stdout.
func shmConsumerMain(ctx context.Context, args []string) error {
	cfg, region, err := shmFlags(ShmConsumerRole, args, nil)
	if err != nil {
		return err
	}
	reg, ring, err := shmChild(region)
	if err != nil {
		return err
	}
	defer reg.Close()
	c, err := ring.Consumer(shm.RingOptions{})
	if err != nil {
		return err
	}
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	ck := newChecker(cfg)
	var bad error
	take := func(v []byte) {
		if err := ck.take(v); err != nil && bad == nil {
			bad = err
		}
	}
	if err := awaitGo(); err != nil {
		return err
	}
	for {
		_, err := c.RecvBatch(ctx, cfg.Batch, take)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("consumer: receive: %w", err)
		}
		ck.last = nanotime()
		if bad != nil {
			return fmt.Errorf("consumer: %w", bad)
		}
	}
	err = c.Close()
	c = nil
	if err != nil {
		return fmt.Errorf("consumer: close: %w", err)
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	if err := ck.writeTo(w); err != nil {
		return err
	}
	return w.Flush()
}
