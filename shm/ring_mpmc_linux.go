package shm

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
)

// The MPMC path: Vyukov's per-slot sequence protocol with claims of up to
// maxClaim positions, and the recovery rules 4 and 5 of the Ring doc.

// beforeClaim, when set (by tests only), runs between a claimer's intent
// store and its compare-and-swap of index (tail or head) from pos, so that
// a test can make another process's claim win that race.
var beforeClaim func(index *atomic.Uint64, pos uint64)

func (p *RingProducer) sendMPMC(ctx context.Context, msgs [][]byte) (int, error) {
	r := p.r
	sent := 0
	for sent < len(msgs) {
		k := min(len(msgs)-sent, maxClaim)
		t := r.tail.Load()
		n := 0
		for n < k {
			w := r.word(t + uint64(n)).Load()
			if uint32(w) != uint32(t+uint64(n)) {
				break
			}
			p.words[n] = w
			n++
		}
		if n == 0 {
			w := r.word(t).Load()
			if int32(uint32(w)-uint32(t)) > 0 {
				if r.tail.Load() == t {
					return sent, badSeq(t, w)
				}
				continue // another producer claimed t meanwhile
			}
			if err := p.waitSlot(ctx, t); err != nil {
				return sent, err
			}
			continue
		}
		p.e.intent.Store(uint64(uint32(t)) | uint64(n)<<32)
		if beforeClaim != nil {
			beforeClaim(r.tail, t)
		}
		if !r.tail.CompareAndSwap(t, t+uint64(n)) {
			// Lost to another producer: the intent now covers its
			// claim, and kept while this one waits it would shield
			// that claim from rule 4 should its producer die.
			p.e.intent.Store(0)
			continue
		}
		var revoked int
		for i := range n {
			pos, m := t+uint64(i), msgs[sent+i]
			copy(r.payload(pos, uint32(len(m))), m)
			if !r.word(pos).CompareAndSwap(p.words[i], slotWord(uint32(pos+1), uint32(len(m)))) {
				revoked++
			}
		}
		sent += n
		p.c.Messages += uint64(n)
		p.c.Batches++
		if p.s.waking.wake() {
			p.c.FutexWakes++
		}
		if revoked > 0 {
			return sent, fmt.Errorf("send to ring: %d messages: %w", revoked, ErrRevoked)
		}
	}
	return sent, nil
}

// waitSlot waits until position t can be claimed, or tail moves past it.
func (p *RingProducer) waitSlot(ctx context.Context, t uint64) error {
	r := p.r
	cons := r.consumers()
	ready := func() bool {
		return r.tail.Load() != t || uint32(r.word(t).Load()) == uint32(t)
	}
	err := block(ctx, p.s.waitFor, p.opt.Spin, &p.c, ready, func(slow bool) error {
		if slow {
			cons.reap(nil)
			r.releaseDead(t)
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

// releaseDead frees the slots, from position t-Slots on, that consumers
// claimed and died before releasing (rule 5).
func (r *Ring) releaseDead(t uint64) {
	h := r.head.Load()
	first := t - r.mask - 1
	if int64(h-first) <= 0 {
		return
	}
	live := r.consumers().liveIntents()
	freed := false
	for q := first; q != h && q-first <= r.mask; q++ {
		w := r.word(q).Load()
		if uint32(w) != uint32(q+1) || coveredBy(live, q) {
			continue
		}
		if r.word(q).CompareAndSwap(w, slotWord(uint32(q+r.mask+1), 0)) {
			freed = true
			if uint32(w>>32) != tombstone {
				r.cnt.lostC.Add(1)
			}
		}
	}
	if freed {
		ringQueue{&r.w.notFull, &r.w.fullWaiters}.wake()
	}
}

func (c *RingConsumer) recvMPMC(ctx context.Context, max int, fn func([]byte), try bool) (int, error) {
	r := c.r
	for {
		h := r.head.Load()
		n := 0
		for n < max {
			pos := h + uint64(n)
			w := r.word(pos).Load()
			if uint32(w) != uint32(pos+1) {
				break
			}
			c.words[n] = w
			n++
		}
		if n == 0 {
			w := r.word(h).Load()
			if int32(uint32(w)-uint32(h+1)) > 0 {
				if r.head.Load() == h {
					return 0, badSeq(h, w)
				}
				continue // another consumer took h meanwhile
			}
			if try {
				return 0, nil
			}
			if err := c.waitMessage(ctx, h); err != nil {
				return 0, err
			}
			continue
		}
		c.e.intent.Store(uint64(uint32(h)) | uint64(n)<<32)
		if beforeClaim != nil {
			beforeClaim(r.head, h)
		}
		if !r.head.CompareAndSwap(h, h+uint64(n)) {
			c.e.intent.Store(0) // it covers the winner's claim (see sendMPMC)
			continue
		}
		got := 0
		var err error
		for i := range n {
			pos := h + uint64(i)
			st, l, derr := decodeSlot(c.words[i], pos, r.max)
			switch {
			case derr != nil:
				err = derr
			case st == slotTombstone:
				c.c.Tombstones++
			default:
				fn(r.payload(pos, l))
				got++
			}
			r.word(pos).Store(slotWord(uint32(pos+r.mask+1), 0))
		}
		c.c.Messages += uint64(got)
		c.c.Batches++
		if c.s.waking.wake() {
			c.c.FutexWakes++
		}
		if got == 0 && err == nil {
			continue // only tombstones: look again
		}
		return got, err
	}
}

// waitMessage waits until position h is published or head moves past it.
func (c *RingConsumer) waitMessage(ctx context.Context, h uint64) error {
	r := c.r
	prods := r.producers()
	ready := func() bool {
		return r.head.Load() != h || uint32(r.word(h).Load()) == uint32(h+1)
	}
	err := block(ctx, c.s.waitFor, c.opt.Spin, &c.c, ready, func(slow bool) error {
		if slow {
			prods.reap(nil)
			r.tombstoneDead(h)
		}
		if prods.gone() && r.tail.Load() == h && !ready() {
			return io.EOF
		}
		return nil
	})
	return wrapWait("receive from ring", err)
}

// tombstoneDead marks lost every position from h on that a producer
// claimed and died before publishing (rule 4).
func (r *Ring) tombstoneDead(h uint64) {
	t := r.tail.Load()
	if int64(t-h) <= 0 {
		return
	}
	live := r.producers().liveIntents()
	for p := h; p != t && p-h <= r.mask; p++ {
		w := r.word(p).Load()
		if uint32(w) != uint32(p) || coveredBy(live, p) {
			continue
		}
		if r.word(p).CompareAndSwap(w, slotWord(uint32(p+1), tombstone)) {
			r.cnt.lostP.Add(1)
		}
	}
}

// Reap looks for dead producers and consumers at once, instead of waiting
// for a producer or consumer to find them while it waits: it drops their
// entries, marks what dead producers claimed (MPMC) or wrote (SPSC) and
// never published as lost, and releases what dead consumers had taken
// (counted lost). It
// returns the ring's counters afterwards.
func (r *Ring) Reap() RingStats {
	if r.h.Mode == SPSC {
		r.producers().reap(r.dropDeadProducer)
		r.consumers().reap(func(*ringEntry) { r.dropTaken() })
		return r.Stats()
	}
	r.producers().reap(nil)
	r.consumers().reap(nil)
	r.tombstoneDead(r.head.Load())
	r.releaseDead(r.tail.Load())
	return r.Stats()
}

// badSeq reports a slot whose sequence is ahead of a position while the
// index still points at it: a consumer (producer) moves head (tail) past a
// position before its slot's sequence can pass it, so only corruption
// shows this.
func badSeq(p, w uint64) error {
	return &RingError{What: fmt.Sprintf("slot sequence at position %d", p), Want: "at most position+1", Got: fmt.Sprint(uint32(w))}
}
