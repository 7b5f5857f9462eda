package shm

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
)

// The SPSC fast path. The producer owns tail and the slots past head+Slots
// it may fill; the consumer owns head and taken. The producer writes each
// message's payload and then its slot word, (position+1, length), and
// publishes every message before position t at once with one atomic store
// of tail = t: once per batch (RingOptions.Batch, the end of a SendBatch,
// a Flush, or a full ring), as the bare ring does. Such a slot word is
// written with a plain store and marked slotPending: by itself it
// publishes nothing. Send, when nothing is pending, publishes its message
// by an atomic store of the slot word without the mark, and then stores
// tail: a consumer waiting at head sees the message in the cache line it
// arrives in, without a second miss on tail's line.
//
// The consumer, once it has read all it last saw, reads the slot word at
// head, which may show a message Send published (before its store of
// tail), and, if a message is written there, tail; it stores taken and head once per batch. The producer
// reads head only when its cached copy says the ring is full, and makes
// the wake-up check once per batch, after its store of tail; the consumer
// makes it after its store of head. So in a stream each side makes one
// locked store per batch, not one per message: a per-message store of the
// slot word (an XCHG on amd64) stalled the producer on the cache line the
// consumer had just read, 95% of its time in the profile.

// slotPending marks, in an SPSC slot word, a message published only by
// tail, not by the word: bit 31 of the length, above any slot size.
const slotPending = uint64(1) << 63

func (p *RingProducer) writeSPSC(ctx context.Context, msg []byte, now bool) error {
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
	// The copy and the store written as below, not through one slot
	// pointer: that form measured 900 ns against 600 per spinning round
	// trip of 8 bytes (an in-process ping-pong, interleaved, 4 runs), for
	// the same loads and stores.
	copy(r.payload(p.tail, uint32(len(msg))), msg)
	w := slotWord(uint32(p.tail+1), uint32(len(msg)))
	if now && p.published == p.tail {
		// Published by this store: tail is at its position, and the
		// store of tail that follows (Flush) makes it p.tail+1.
		r.word(p.tail).Store(w)
	} else {
		// A plain store where it cannot tear (storePending): the store
		// of tail that publishes it comes after, and no other process
		// reads the slot as a message until then.
		storePending(r.slot(p.tail), w|slotPending)
	}
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

// resumeSPSC returns where an SPSC producer taking over continues, from
// head and tail as it read them: at tail (at head if tail lags it: the
// consumer read a message its slot word published before the store of
// tail landed), after a message its unmarked slot word published.
func (r *Ring) resumeSPSC(h, t uint64) uint64 {
	if int64(t-h) < 0 {
		t = h
	}
	for t-h <= r.mask {
		w := r.word(t).Load()
		if uint32(w) != uint32(t+1) || w&slotPending != 0 {
			break
		}
		t++
	}
	return t
}

// dropPending counts as lost what a dead SPSC producer wrote from position
// t on and never published (slot words written for their position and
// marked slotPending), and clears those words to what no message has, so
// that whoever comes next counts them no more. t is where its successor
// starts (resumeSPSC). Only a process that holds the producer's entry
// calls it: the producer taking it over, or a reaper.
func (r *Ring) dropPending(t uint64) {
	h := r.head.Load()
	for ; t-h <= r.mask; t++ {
		w := r.word(t).Load()
		if uint32(w) != uint32(t+1) || w&slotPending == 0 {
			return
		}
		if r.word(t).CompareAndSwap(w, slotWord(uint32(t), 0)) {
			r.cnt.lostP.Add(1)
		}
	}
}

// dropDeadProducer is what a reaper does for a dead SPSC producer's entry.
func (r *Ring) dropDeadProducer(*ringEntry) {
	h := r.head.Load()
	r.dropPending(r.resumeSPSC(h, r.tail.Load()))
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
	if c.tail == c.head && !c.seeTail() {
		if try {
			return 0, nil
		}
		if err := c.waitData(ctx); err != nil {
			return 0, err
		}
	}
	if d := c.tail - c.head; d > r.mask+1 {
		// Not what a producer stores: tail is behind head, or ahead by
		// more than the ring holds. Read nothing.
		return 0, &RingError{What: fmt.Sprintf("tail at head %d", c.head), Want: fmt.Sprintf("head to head+%d", r.mask+1), Got: fmt.Sprint(c.tail)}
	}
	end := c.head + min(c.tail-c.head, uint64(max))
	r.taken.Store(end)
	var err error
	got := 0
	for p := c.head; p != end; p++ {
		s := r.slot(p)
		w := (*atomic.Uint64)(s).Load()
		seq, l := uint32(w), uint32((w&^slotPending)>>32)
		if seq != uint32(p+1) || l > r.max {
			err = &RingError{What: fmt.Sprintf("slot word at position %d", p), Want: fmt.Sprintf("sequence %d, length at most %d", uint32(p+1), r.max), Got: fmt.Sprintf("sequence %d, length %d", seq, l)}
			continue
		}
		fn(unsafeBytes(s, slotWordSize, int(l)))
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

// seeTail reports whether a message past what the consumer has read is
// published: the slot word at head says Send published it, or it says a
// message is written there and tail has moved past head (or holds what
// no producer stores, which recvSPSC reports). The word comes first: after
// a Send, the producer's store of tail follows that of the word, and a
// consumer polling tail too would make that store wait for tail's cache
// line, on the round trip's path. While the word at head is not written,
// tail cannot have passed head: the producer writes a word before the
// store of tail that covers it. tail may lag head by one: the consumer
// read a message its slot word published before the producer's store of
// tail landed.
func (c *RingConsumer) seeTail() bool {
	w := c.r.word(c.head).Load()
	if uint32(w) != uint32(c.head+1) {
		return false
	}
	if w&slotPending == 0 {
		c.tail = c.head + 1
		return true
	}
	if t := c.r.tail.Load(); t != c.head && t != c.head-1 {
		c.tail = t
		return true
	}
	return false
}

func (c *RingConsumer) waitData(ctx context.Context) error {
	r := c.r
	prods := r.producers()
	err := block(ctx, c.s.waitFor, c.opt.Spin, &c.c, c.seeTail, func(slow bool) error {
		if slow {
			prods.reap(r.dropDeadProducer)
		}
		if prods.gone() && !c.seeTail() {
			return io.EOF
		}
		return nil
	})
	return wrapWait("receive from ring", err)
}
