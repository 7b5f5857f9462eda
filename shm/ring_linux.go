package shm

import (
	"errors"
	"fmt"
	"sync/atomic"
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
// SPSC ring the producer copies a message into the slot of position p,
// writes the word (p+1, length, marked pending) beside it, and publishes
// every message before position t with one atomic store of tail = t, once
// per batch; a Send with nothing pending instead publishes its message by
// an atomic store of the unmarked word, and then stores tail. The
// consumer, when it has read all it saw before, looks at the word at head
// (an unmarked word publishes that one message) and, once a word is
// written there, at tail; it reads up to a batch of the messages before
// what it saw (a slot word that does not hold its position+1 is
// corruption), stores taken (what it hands to its caller) and, once the
// caller is done, releases the slots with one store of head. The producer
// reads head only when its cached copy says the ring is full.
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
//     written: it is published by a single atomic store that follows the
//     copy: of tail (SPSC: after the copies and slot words of the whole
//     batch it publishes), of its unmarked slot word (an SPSC Send with
//     nothing pending), or a compare-and-swap of its slot word (MPMC). A
//     producer killed at any moment therefore never delivers a torn
//     message. An SPSC producer that takes over from a dead one starts at
//     tail, or after the one message past it an unmarked word published,
//     over what the dead one wrote and never published (counted lost).
//  2. Only the winner of the compare-and-swap on tail writes a claimed
//     slot's payload, and only the winner of the one on head reads it; a
//     slot word changes only from free to published (its producer, or a
//     tombstone, see 4), and from published to free (its consumer, or a
//     recovering producer, see 5).
//  3. Before claiming, a process stores its intent (low 32 bits of the first
//     position, count) in its table entry. The intent stays until its next
//     claim, which it makes only after publishing (producer) or releasing
//     (consumer) the previous one. So while a claimer lives, some live entry's
//     intent covers each position it holds. A claim that loses its
//     compare-and-swap clears the intent at once: it covers the winner's
//     positions, and kept while the loser waits it would hide the winner's
//     death from rules 4 and 5 for ever.
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
// # Limits
//
//   - The 32-bit sequences compare by signed difference, so a process that
//     stalls for 2^31 positions while others run could misread a slot;
//     nothing else depends on the counters' magnitude.
//   - "Lost" is what the ring knows: an MPMC claim a dead producer never
//     published, messages an SPSC producer wrote and had not published
//     when it died (up to RingOptions.Batch-1 that Write left pending, and
//     what the call it died in wrote; counted by the producer that takes
//     over, or by a reaper), or messages a dead consumer had taken (whether
//     or not its caller had handled them).
//   - Dead processes are found by the processes waiting on them, once per
//     20 ms wait slice (or by [Ring.Reap]); a dead sleeper leaves the
//     waiter count up until the next wake-up, which costs one spare
//     FUTEX_WAKE.
//   - io.EOF and [ErrNoConsumers] are decided by a scan of the other side's
//     table. While one producer leaves and another attaches at the same
//     moment, the scan can find the table empty: a consumer may see io.EOF
//     just before a new producer's messages. A program that restarts
//     producers keeps one attached meanwhile, or reads on after io.EOF.
//   - A message is at most MaxMessage bytes; there are no multi-slot
//     messages.
//   - Processes sharing a ring must share a pid namespace: unlike a
//     [Mutex], a ring records no namespace, and a process in another one
//     is judged by a pid that names some other process here (a live
//     producer could be taken for dead and its claims tombstoned).
//   - A process that stops for good inside a RecvBatch callback (or a
//     Send) while it lives holds its claim for good: only death releases
//     it.
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

func recAlive(rec uint64) bool {
	rec &^= recReaping
	return alive(uint32(rec>>32), uint32(rec))
}

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
	return unsafeBytes(r.slot(p), slotWordSize, int(n))
}

// unsafeBytes returns the n bytes at offset off from p.
func unsafeBytes(p unsafe.Pointer, off, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(p, off)), n)
}

// RingStats are a ring's shared counters, summed over every process.
type RingStats struct {
	LostByProducers uint64 // messages claimed (MPMC) or written (SPSC) by producers that died before publishing them
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
