package shm

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// maxClaim bounds the positions one MPMC claim takes.
const maxClaim = 64

// A RingProducer puts messages into a ring. It belongs to one goroutine at
// a time; goroutines or processes that produce concurrently each attach
// their own (an SPSC ring takes only one).
type RingProducer struct {
	r     *Ring
	e     *ringEntry
	s     side
	opt   RingOptions
	c     RingCounters
	words [maxClaim]uint64 // MPMC: the free slot words of a claim

	// SPSC: the next position to write, what is published, and the
	// consumer's head as last read.
	tail, published, head uint64
}

// Producer attaches this process to r as a producer. It fails with an
// error matching [ErrRingBusy] when the producer table holds only live
// processes; a dead producer's entry is taken over.
func (r *Ring) Producer(opt RingOptions) (*RingProducer, error) {
	p := &RingProducer{r: r, s: r.producers(), opt: opt.withDefaults()}
	e, err := p.s.attach(nil)
	if err != nil {
		return nil, err
	}
	p.e = e
	r.prefault()
	p.head = r.head.Load()
	p.tail = r.tail.Load()
	if r.h.Mode == SPSC {
		// A dead predecessor published everything before tail, and
		// perhaps one message more by its slot word (a Send that died
		// before its store of tail), which the consumer may have read
		// already: continue after it. What it wrote and never published
		// was never in the ring: it is counted lost.
		p.tail = r.resumeSPSC(p.head, p.tail)
		r.dropPending(p.tail)
		r.tail.Store(p.tail)
	}
	p.published = p.tail
	return p, nil
}

// Send puts msg into the ring and publishes it, waiting while the ring is
// full. It fails with an error matching [ErrNoConsumers] instead of
// waiting when every consumer that attached is gone, and with ctx's error
// when ctx is done.
func (p *RingProducer) Send(ctx context.Context, msg []byte) error {
	if p.r.h.Mode == SPSC && len(msg) <= int(p.r.max) {
		// Published at once by its slot word when nothing is pending
		// (see writeSPSC), then by tail.
		if err := p.writeSPSC(ctx, msg, true); err != nil {
			return err
		}
		p.Flush()
		return nil
	}
	if err := p.Write(ctx, msg); err != nil {
		return err
	}
	p.Flush()
	return nil
}

// SendBatch puts msgs into the ring, publishing them with as few index
// stores (SPSC) or claims (MPMC) as the free space allows, and returns
// how many it put before an error.
func (p *RingProducer) SendBatch(ctx context.Context, msgs [][]byte) (int, error) {
	for i, m := range msgs {
		if len(m) > int(p.r.max) {
			return 0, fmt.Errorf("send message %d: %d bytes, the ring takes at most %d", i, len(m), p.r.max)
		}
	}
	if p.r.h.Mode == MPMC {
		return p.sendMPMC(ctx, msgs)
	}
	for i, m := range msgs {
		if err := p.writeSPSC(ctx, m, false); err != nil {
			p.Flush()
			return i, err
		}
	}
	p.Flush()
	return len(msgs), nil
}

// Write puts msg into the ring. In an SPSC ring the consumer sees it only
// once it is published: by the next Flush or Send, once
// RingOptions.Batch messages are pending, at the end of a SendBatch, or
// when the ring is full; a producer that dies first never delivers it (it
// is counted in RingStats.LostByProducers). In an MPMC ring Write is Send.
func (p *RingProducer) Write(ctx context.Context, msg []byte) error {
	if len(msg) > int(p.r.max) {
		return fmt.Errorf("send message: %d bytes, the ring takes at most %d", len(msg), p.r.max)
	}
	if p.r.h.Mode == MPMC {
		_, err := p.sendMPMC(ctx, [][]byte{msg})
		return err
	}
	return p.writeSPSC(ctx, msg, false)
}

// Flush publishes what Write left pending.
func (p *RingProducer) Flush() {
	if p.r.h.Mode == SPSC && p.published != p.tail {
		p.publish()
	}
}

// Counters returns what this producer did.
func (p *RingProducer) Counters() RingCounters { return p.c }

// Close flushes and detaches the producer. When the last producer closes,
// consumers get io.EOF once they have read what is left.
func (p *RingProducer) Close() error {
	if p.e == nil {
		return errors.New("shm: ring producer already closed")
	}
	p.Flush()
	p.s.detach(p.e)
	p.e = nil
	return nil
}

// A RingConsumer takes messages out of a ring. It belongs to one goroutine
// at a time.
type RingConsumer struct {
	r     *Ring
	e     *ringEntry
	s     side
	opt   RingOptions
	c     RingCounters
	words [maxClaim]uint64

	// SPSC: the next position to read, and the producer's tail as last
	// read.
	head, tail uint64
}

// Consumer attaches this process to r as a consumer. It fails with an
// error matching [ErrRingBusy] when the consumer table holds only live
// processes. Taking over a dead SPSC consumer's entry counts what it had
// taken and not released as lost, and skips it.
func (r *Ring) Consumer(opt RingOptions) (*RingConsumer, error) {
	c := &RingConsumer{r: r, s: r.consumers(), opt: opt.withDefaults()}
	var onDead func(*ringEntry)
	if r.h.Mode == SPSC {
		onDead = func(*ringEntry) { r.dropTaken() }
	}
	e, err := c.s.attach(onDead)
	if err != nil {
		return nil, err
	}
	c.e = e
	r.prefault()
	c.head = r.head.Load()
	c.tail = c.head
	return c, nil
}

// RecvBatch waits until the ring holds a message, then calls fn for each
// of up to max messages, in order, and releases their slots. msg is valid
// only during the call. RecvBatch returns how many messages fn got, and
// io.EOF once the ring is empty and every producer that attached is gone.
// A slot holding what no producer could have written gives an error
// matching [ErrRingCorrupt].
func (c *RingConsumer) RecvBatch(ctx context.Context, max int, fn func(msg []byte)) (int, error) {
	return c.recv(ctx, max, fn, false)
}

// TryRecvBatch is RecvBatch that never waits: it returns 0, nil when the
// ring is empty.
func (c *RingConsumer) TryRecvBatch(max int, fn func(msg []byte)) (int, error) {
	return c.recv(context.Background(), max, fn, true)
}

// Recv waits for one message and appends it to buf.
func (c *RingConsumer) Recv(ctx context.Context, buf []byte) ([]byte, error) {
	_, err := c.recv(ctx, 1, func(m []byte) { buf = append(buf, m...) }, false)
	return buf, err
}

func (c *RingConsumer) recv(ctx context.Context, max int, fn func([]byte), try bool) (int, error) {
	if max < 1 {
		return 0, nil
	}
	if c.r.h.Mode == MPMC {
		return c.recvMPMC(ctx, min(max, maxClaim), fn, try)
	}
	return c.recvSPSC(ctx, max, fn, try)
}

// Counters returns what this consumer did.
func (c *RingConsumer) Counters() RingCounters { return c.c }

// Close detaches the consumer. When the last consumer closes, producers
// that would wait for space get [ErrNoConsumers].
func (c *RingConsumer) Close() error {
	if c.e == nil {
		return errors.New("shm: ring consumer already closed")
	}
	c.s.detach(c.e)
	c.e = nil
	return nil
}

func wrapWait(op string, err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}
