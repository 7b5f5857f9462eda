package shm

import (
	"context"
	"fmt"
	"io"
)

// The SPSC fast path. The producer owns tail and its slots past tail, the
// consumer owns head and taken; each reads the other's index only when its
// cached copy says the ring is full (empty), and writes its own once per
// batch. Slot words carry only the length: the tail store publishes them.

func (p *RingProducer) writeSPSC(ctx context.Context, msg []byte) error {
	r := p.r
	if p.tail-p.head > r.mask {
		p.head = r.head.Load()
		if p.tail-p.head > r.mask {
			p.Flush() // let the consumer see what it is to free
			if err := p.waitSpace(ctx); err != nil {
				return err
			}
		}
	}
	s := r.slot(p.tail)
	*(*uint64)(s) = uint64(len(msg)) << 32
	copy(r.payload(p.tail, uint32(len(msg))), msg)
	p.tail++
	p.c.Messages++
	if p.tail-p.published >= uint64(p.opt.Batch) {
		p.publish()
	}
	return nil
}

func (p *RingProducer) publish() {
	p.r.tail.Store(p.tail)
	p.published = p.tail
	p.c.Batches++
	if p.s.waking.wake() {
		p.c.FutexWakes++
	}
}

func (p *RingProducer) waitSpace(ctx context.Context) error {
	r := p.r
	cons := r.consumers()
	ready := func() bool {
		p.head = r.head.Load()
		return p.tail-p.head <= r.mask
	}
	err := block(ctx, p.s.waitFor, p.opt.Spin, &p.c, ready, func(slow bool) error {
		if slow {
			cons.reap(func(*ringEntry) { r.dropTaken() })
		}
		if cons.gone() {
			return ErrNoConsumers
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("send to ring: %w", err)
	}
	return nil
}

// dropTaken moves head up to taken after an SPSC consumer died, counting
// what it had taken as lost. Only a new consumer or a producer that found
// the old one dead calls it; the compare-and-swap makes it count once.
func (r *Ring) dropTaken() {
	h, t := r.head.Load(), r.taken.Load()
	if t != h && int64(t-h) > 0 && r.head.CompareAndSwap(h, t) {
		r.cnt.lostC.Add(t - h)
		r.w.notFull.Add(1)
		futexWakeWord(&r.w.notFull, wakeAll)
	}
}

func (c *RingConsumer) recvSPSC(ctx context.Context, max int, fn func([]byte), try bool) (int, error) {
	r := c.r
	if c.head == c.tail {
		c.tail = r.tail.Load()
		if c.head == c.tail {
			if try {
				return 0, nil
			}
			if err := c.waitData(ctx); err != nil {
				return 0, err
			}
		}
	}
	n := min(c.tail-c.head, uint64(max))
	end := c.head + n
	r.taken.Store(end)
	var err error
	got := 0
	for p := c.head; p != end; p++ {
		l := uint32(*(*uint64)(r.slot(p)) >> 32)
		if l > r.max {
			err = &RingError{What: fmt.Sprintf("slot length at position %d", p), Want: fmt.Sprintf("at most %d", r.max), Got: fmt.Sprint(l)}
			continue
		}
		fn(r.payload(p, l))
		got++
	}
	c.head = end
	r.head.Store(end)
	c.c.Messages += uint64(got)
	c.c.Batches++
	if c.s.waking.wake() {
		c.c.FutexWakes++
	}
	return got, err
}

func (c *RingConsumer) waitData(ctx context.Context) error {
	r := c.r
	prods := r.producers()
	ready := func() bool {
		c.tail = r.tail.Load()
		return c.tail != c.head
	}
	err := block(ctx, c.s.waitFor, c.opt.Spin, &c.c, ready, func(slow bool) error {
		if slow {
			prods.reap(nil)
		}
		if prods.gone() && !ready() {
			return io.EOF
		}
		return nil
	})
	return wrapWait("receive from ring", err)
}
