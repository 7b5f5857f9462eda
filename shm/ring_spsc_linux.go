package shm

import (
	"context"
	"fmt"
	"io"
)

// The SPSC fast path. The producer owns tail and the slots past head+Slots
// it may fill; the consumer owns head and taken. A message is published by
// the atomic store of its slot word, (position+1, length), after its
// payload: the consumer polls the slot word at head, which shares a cache
// line with the payload, and never reads tail on its fast path. The
// producer reads head only when its cached copy says the ring is full; the
// consumer stores taken and head once per batch, the producer stores tail
// once per batch (for Len, EOF and a successor after its death) and makes
// the wake-up check then.

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
	copy(r.payload(p.tail, uint32(len(msg))), msg)
	r.word(p.tail).Store(slotWord(uint32(p.tail+1), uint32(len(msg))))
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
	if !c.published(c.head) {
		if try {
			return 0, nil
		}
		if err := c.waitData(ctx); err != nil {
			return 0, err
		}
	}
	n := uint64(1)
	for n < uint64(max) && n <= r.mask && c.published(c.head+n) {
		n++
	}
	end := c.head + n
	r.taken.Store(end)
	var err error
	got := 0
	for p := c.head; p != end; p++ {
		l := uint32(r.word(p).Load() >> 32)
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

// published reports whether the slot word of position p says its message
// is there.
func (c *RingConsumer) published(p uint64) bool {
	return uint32(c.r.word(p).Load()) == uint32(p+1)
}

func (c *RingConsumer) waitData(ctx context.Context) error {
	r := c.r
	prods := r.producers()
	ready := func() bool { return c.published(c.head) }
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
