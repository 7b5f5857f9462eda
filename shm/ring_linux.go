package shm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// A Ring is a bounded queue of messages of up to MaxMessage bytes in
// memory that several processes map (see [MakeRing], [OpenRing]). Processes
// attach to it as a [RingProducer] or a [RingConsumer]; messages are copied
// into the ring's slots and out of them, and a busy ring makes no system
// call at all: a producer or consumer sleeps on a futex only when the ring
// is full or empty, and a wake-up is a system call only when the waiter
// count says someone sleeps.
//
// # Protocol
//
// Positions are uint64 counters that only grow (and wrap around past 2^64);
// position p lives in slot p mod Slots, and each slot starts with a slot
// word: the low 32 bits of a position (its sequence) and a length. In an
// SPSC ring the producer copies a message into the slot of position p and
// publishes it by storing the word (p+1, length); the consumer polls the
// word at head, reads up to a batch of published messages, stores taken
// (what it hands to its caller) and, once the caller is done, releases the
// slots with one store of head. The producer reads head only when its
// cached copy says the ring is full, and stores tail once per batch.
// An MPMC ring is Dmitry Vyukov's bounded MPMC queue: each slot word holds
// a 32-bit sequence (the low bits of a position) and the message length.
// A producer claims positions [t, t+n) with one compare-and-swap of tail
// after seeing seq == position in each slot, copies the messages in, and
// publishes each one with a compare-and-swap of its slot word to
// (position+1, length). A consumer claims published positions with a
// compare-and-swap of head, and releases each slot by storing
// (position+Slots, 0) in its word.
//
// # Invariants
//
//  1. A message is visible to a consumer only after its whole payload is
//     written: it is published by a single atomic store (SPSC) or
//     compare-and-swap (MPMC) of its slot word that follows the copy. A
//     producer killed at any moment therefore never delivers a torn
//     message. An SPSC producer that takes over from a dead one starts
//     after the last message published, whatever tail says.
//  2. Only the winner of the compare-and-swap on tail writes a claimed
//     slot's payload, and only the winner of the one on head reads it; a
//     slot word changes only from free to published (its producer, or a
//     tombstone, see 4), and from published to free (its consumer, or a
//     recovering producer, see 5).
//  3. Before claiming, a process stores its intent (low 32 bits of the first
//     position, count) in its table entry. The intent stays until its next
//     claim, which it makes only after publishing (producer) or releasing
//     (consumer) the previous one. So while a claimer lives, some live entry's
//     intent covers each position it holds.
//  4. A consumer finding position h claimed (tail > h) and unpublished
//     looks, once per wait slice, for a live producer whose intent covers h.
//     If there is none, the claimer is dead: the consumer swaps the slot
//     word from (h, any) to (h+1, tombstone) with a compare-and-swap, which
//     a late publish by the producer cannot also win, and counts one
//     message lost. Consumers skip tombstones.
//  5. A producer finding the ring full at position t, with the slot of
//     t-Slots published and claimed (head past it) but not released, looks
//     for a live consumer whose intent covers t-Slots. If there is none it
//     releases the slot itself by compare-and-swap and counts the message
//     lost: the dead consumer had taken it.
//  6. The waiter count is incremented before the waiter rereads the ring and
//     sleeps on the futex word; a waker changes the ring, then reads the
//     count, and only if it is non-zero resets it, bumps the futex word and
//     wakes. Sequential consistency of Go's atomics makes one of the two
//     see the other, so no wake-up is lost; a sleeper also wakes once per
//     wait slice (20 ms) to look for dead peers and a done context.
//  7. A process is identified by its pid and start time (as a [Mutex]'s
//     owner is): a recycled pid is not taken for the dead process.
//
// The 32-bit sequences compare by signed difference, so a process that
// stalls for 2^31 positions while others run could misread a slot; nothing
// else depends on the counters' magnitude.
//
// A Ring value is a view and holds no resources; it is safe for concurrent
// use. Each [RingProducer] and [RingConsumer] belongs to one goroutine at a
// time.
type Ring struct {
	mem    []byte // the ring's bytes, header first
	h      RingHeader
	tail   *atomic.Uint64
	head   *atomic.Uint64
	taken  *atomic.Uint64
	w      *ringWaitWords
	cnt    *ringCounts
	prods  []ringEntry
	conss  []ringEntry
	slots  unsafe.Pointer
	mask   uint64
	stride uintptr
	max    uint32 // payload bytes per slot
}

type ringWaitWords struct {
	notEmpty, emptyWaiters, notFull, fullWaiters atomic.Uint32
}

type ringCounts struct {
	lostP, lostC, deadP, deadC atomic.Uint64
	everP, everC, _, _         atomic.Uint32 // two words reserved
}

// A ringEntry is a producer or consumer table entry: the process record
// (pid<<32 | start time, zero when free) and its intent (see Ring).
type ringEntry struct {
	rec    atomic.Uint64
	intent atomic.Uint64
}

// covers reports whether intent in covers position p.
func covers(in uint64, p uint64) bool { return uint32(p)-uint32(in) < uint32(in>>32) }

func recAlive(rec uint64) bool { return alive(uint32(rec>>32), uint32(rec)) }

// MakeRing lays out a new ring described by cfg in mem at byte offset off,
// which must be 64-byte aligned in memory, and returns it. No process may
// use the memory as a ring while it is being made. The header's magic is
// written last, so [OpenRing] never accepts a half-made ring.
func MakeRing(mem []byte, off int, cfg RingConfig) (*Ring, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("make ring: %w", err)
	}
	h := cfg.header()
	p, err := wordAt(mem, off, int(h.Size))
	if err != nil {
		return nil, fmt.Errorf("make ring: %w", err)
	}
	if uintptr(p)%ringLine != 0 {
		return nil, fmt.Errorf("make ring: offset %d is not 64-byte aligned", off)
	}
	b := mem[off : off+int(h.Size)]
	magic := (*atomic.Uint32)(p)
	magic.Store(0)
	clear(b[4:])
	h.encode(b)
	r := view(b, h)
	r.tail.Store(cfg.Start)
	r.head.Store(cfg.Start)
	r.taken.Store(cfg.Start)
	for i := range uint64(h.Slots) {
		// The first position at or after Start that lives in slot i.
		pos := cfg.Start + (i-cfg.Start)&r.mask
		r.word(pos).Store(slotWord(uint32(pos), 0))
	}
	magic.Store(ringMagic)
	return r, nil
}

// OpenRing returns the ring another process made with MakeRing at off. A
// missing, foreign or corrupt header, or one describing more memory than
// mem holds, gives a *[RingError] (errors.Is(err, [ErrRingCorrupt])).
func OpenRing(mem []byte, off int) (*Ring, error) {
	p, err := wordAt(mem, off, ringHeaderSize)
	if err != nil {
		return nil, fmt.Errorf("open ring: %w", err)
	}
	if uintptr(p)%ringLine != 0 {
		return nil, fmt.Errorf("open ring: offset %d is not 64-byte aligned", off)
	}
	var hb [ringHeaderSize]byte
	m := (*atomic.Uint32)(p).Load()
	copy(hb[:], mem[off:off+ringHeaderSize])
	hb[0], hb[1], hb[2], hb[3] = byte(m), byte(m>>8), byte(m>>16), byte(m>>24)
	h, err := DecodeRingHeader(hb[:], len(mem)-off)
	if err != nil {
		return nil, fmt.Errorf("open ring at offset %d: %w", off, err)
	}
	return view(mem[off:off+int(h.Size)], h), nil
}

func view(b []byte, h RingHeader) *Ring {
	base := unsafe.Pointer(unsafe.SliceData(b))
	at := func(off int) unsafe.Pointer { return unsafe.Add(base, off) }
	return &Ring{
		mem:    b,
		h:      h,
		tail:   (*atomic.Uint64)(at(ringOffTail)),
		head:   (*atomic.Uint64)(at(ringOffHead)),
		taken:  (*atomic.Uint64)(at(ringOffTaken)),
		w:      (*ringWaitWords)(at(ringOffWait)),
		cnt:    (*ringCounts)(at(ringOffCounts)),
		prods:  unsafe.Slice((*ringEntry)(at(h.producersOff())), h.MaxProducers),
		conss:  unsafe.Slice((*ringEntry)(at(h.consumersOff())), h.MaxConsumers),
		slots:  at(h.slotsOff()),
		mask:   uint64(h.Slots) - 1,
		stride: uintptr(h.SlotSize),
		max:    h.SlotSize - slotWordSize,
	}
}

// Header returns the ring's header.
func (r *Ring) Header() RingHeader { return r.h }

// MaxMessage returns the largest message the ring carries, in bytes.
func (r *Ring) MaxMessage() int { return int(r.max) }

// Len returns the number of positions claimed by producers and not yet
// released by consumers: messages queued, in flight or being read. In an
// SPSC ring it counts what the producer has published by its last batch.
func (r *Ring) Len() int {
	h := r.head.Load()
	return int(max(int64(r.tail.Load()-h), 0))
}

func (r *Ring) slot(p uint64) unsafe.Pointer {
	return unsafe.Add(r.slots, uintptr(p&r.mask)*r.stride)
}

func (r *Ring) word(p uint64) *atomic.Uint64 { return (*atomic.Uint64)(r.slot(p)) }

func (r *Ring) payload(p uint64, n uint32) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(r.slot(p), slotWordSize)), n)
}

// RingStats are a ring's shared counters, summed over every process.
type RingStats struct {
	LostByProducers uint64 // messages claimed by producers that died before publishing them
	LostByConsumers uint64 // messages taken by consumers that died before releasing them
	DeadProducers   uint64 // producer entries found dead and dropped
	DeadConsumers   uint64 // consumer entries found dead and dropped
	Producers       int    // producers attached now (dead ones until found)
	Consumers       int    // consumers attached now (dead ones until found)
}

// Stats returns the ring's shared counters.
func (r *Ring) Stats() RingStats {
	return RingStats{
		LostByProducers: r.cnt.lostP.Load(), LostByConsumers: r.cnt.lostC.Load(),
		DeadProducers: r.cnt.deadP.Load(), DeadConsumers: r.cnt.deadC.Load(),
		Producers: r.producers().attached(), Consumers: r.consumers().attached(),
	}
}

// ErrNoConsumers is returned by a producer that would wait for space when
// every consumer that attached has closed or died.
var ErrNoConsumers = errors.New("shared ring has no consumer left")

// ErrRingBusy is returned when a process attaches to a ring whose table
// has no free entry: an SPSC ring with a live producer (or consumer)
// already, or an MPMC ring with MaxProducers (MaxConsumers) live ones.
var ErrRingBusy = errors.New("shared ring has no free entry")

// ErrRevoked is returned by a producer whose claimed slot was declared
// abandoned by a consumer that took it for dead. It cannot happen while
// process records are right (see Ring); the message is counted lost.
var ErrRevoked = errors.New("claimed slot revoked by a consumer")

// side selects a producer or consumer table with its counters.
type side struct {
	tab             []ringEntry
	ever            *atomic.Uint32
	dead            *atomic.Uint64
	name            string
	waitFor, waking ringQueue
}

func (r *Ring) producers() side {
	return side{r.prods, &r.cnt.everP, &r.cnt.deadP, "producer",
		ringQueue{&r.w.notFull, &r.w.fullWaiters}, ringQueue{&r.w.notEmpty, &r.w.emptyWaiters}}
}

func (r *Ring) consumers() side {
	return side{r.conss, &r.cnt.everC, &r.cnt.deadC, "consumer",
		ringQueue{&r.w.notEmpty, &r.w.emptyWaiters}, ringQueue{&r.w.notFull, &r.w.fullWaiters}}
}

// attach takes a free table entry for this process, or the entry of a dead
// one. onDead runs for a dead entry before it is reused, while the
// caller holds it.
func (s side) attach(onDead func(e *ringEntry)) (*ringEntry, error) {
	me := self()
	// Before taking an entry, so that no entry is ever taken while ever
	// is still zero (gone would then miss it).
	s.ever.Store(1)
	for i := range s.tab {
		e := &s.tab[i]
		if e.rec.Load() == 0 && e.rec.CompareAndSwap(0, me) {
			e.intent.Store(0)
			return e, nil
		}
	}
	for i := range s.tab {
		e := &s.tab[i]
		if rec := e.rec.Load(); rec != 0 && !recAlive(rec) && e.rec.CompareAndSwap(rec, me) {
			s.dead.Add(1)
			if onDead != nil {
				onDead(e)
			}
			e.intent.Store(0)
			return e, nil
		}
	}
	return nil, fmt.Errorf("attach %s: %w (%d entries, all live)", s.name, ErrRingBusy, len(s.tab))
}

// detach frees e and wakes the other side, so that it notices at once if
// this was the last one.
func (s side) detach(e *ringEntry) {
	e.intent.Store(0)
	e.rec.Store(0)
	s.waking.wakeAll()
}

// reap drops entries of dead processes and returns how many it dropped.
// onDead runs for each before it is freed.
func (s side) reap(onDead func(e *ringEntry)) int {
	n := 0
	for i := range s.tab {
		e := &s.tab[i]
		rec := e.rec.Load()
		if rec == 0 || recAlive(rec) {
			continue
		}
		if onDead != nil {
			onDead(e)
		}
		if e.rec.CompareAndSwap(rec, 0) {
			s.dead.Add(1)
			n++
		}
	}
	return n
}

// gone reports whether every process of this side that ever attached has
// detached or been reaped. The table itself is the count: a counter
// beside it could be left wrong by a process killed between the two.
func (s side) gone() bool { return s.ever.Load() != 0 && s.attached() == 0 }

// attached counts the entries held, by live processes or dead ones not yet
// reaped.
func (s side) attached() int {
	n := 0
	for i := range s.tab {
		if s.tab[i].rec.Load() != 0 {
			n++
		}
	}
	return n
}

// liveIntents returns the intents of the live entries. An entry whose
// process lives keeps the intent of its claim until the claim is done
// (rule 3), so a claimed position no live intent covers is abandoned.
func (s side) liveIntents() []uint64 {
	var live []uint64
	for i := range s.tab {
		e := &s.tab[i]
		if rec := e.rec.Load(); rec != 0 && recAlive(rec) {
			live = append(live, e.intent.Load())
		}
	}
	return live
}

func coveredBy(intents []uint64, p uint64) bool {
	for _, in := range intents {
		if covers(in, p) {
			return true
		}
	}
	return false
}

// A ringQueue is a futex word and the count of those sleeping on it.
type ringQueue struct {
	word, waiters *atomic.Uint32
}

// wake wakes every sleeper if the count says there is one, and reports
// whether it made the system call.
func (q ringQueue) wake() bool {
	if q.waiters.Load() == 0 || q.waiters.Swap(0) == 0 {
		return false
	}
	q.word.Add(1)
	futexWakeWord(q.word, wakeAll)
	return true
}

func (q ringQueue) wakeAll() {
	q.waiters.Store(0)
	q.word.Add(1)
	futexWakeWord(q.word, wakeAll)
}

// RingCounters count what one producer or consumer did.
type RingCounters struct {
	Messages   uint64 // messages sent or received
	Batches    uint64 // claims or publishes: index or slot-range hand-overs
	FutexWaits uint64 // FUTEX_WAIT system calls
	FutexWakes uint64 // FUTEX_WAKE system calls
	Tombstones uint64 // consumer: messages skipped because their producer died
}

// RingOptions tune a producer or consumer. Zero values take defaults.
type RingOptions struct {
	// Spin is how many times a waiter polls the ring before sleeping on
	// the futex; zero means 200 (under a µs; longer spins measured slower
	// round trips on a loaded 2-CPU VM). Negative means never sleep: poll until
	// the ring is ready (still noticing a done context and dead peers
	// every 20 ms), for the lowest latency at the cost of a busy CPU.
	Spin int

	// Batch (SPSC producer) is how many messages Write leaves pending at
	// most; zero means 32. A written message is visible at once to a
	// consumer that polls, but tail is stored and a sleeping consumer
	// woken only when the batch is published: by Send, Flush, SendBatch,
	// every Batch messages, or when the ring is full.
	Batch int
}

func (o RingOptions) withDefaults() RingOptions {
	if o.Spin == 0 {
		o.Spin = 200
	}
	if o.Batch <= 0 {
		o.Batch = 32
	}
	return o
}

// block waits until ready holds, ctx is done or check fails. check(slow)
// runs before every sleep; slow is true once per wait slice, for the costly
// look at /proc for dead peers.
func block(ctx context.Context, q ringQueue, spin int, c *RingCounters, ready func() bool, check func(slow bool) error) error {
	for range spin {
		if ready() {
			return nil
		}
	}
	last := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		slow := now.Sub(last) >= waitSlice
		if slow {
			last = now
		}
		if err := check(slow); err != nil {
			return err
		}
		if ready() {
			return nil
		}
		if spin < 0 {
			for range 1 << 12 {
				if ready() {
					return nil
				}
			}
			continue
		}
		q.waiters.Add(1)
		e := q.word.Load()
		if ready() {
			return nil // the count stays up: at worst one spare wake-up
		}
		futexWaitWord(q.word, e, slice(ctx))
		c.FutexWaits++
		if ready() {
			return nil
		}
	}
}
