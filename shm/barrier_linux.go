package shm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// ErrBrokenBarrier is returned by [Barrier.Wait] once a wait on the barrier
// has failed: the parties can no longer all meet, until Reset.
var ErrBrokenBarrier = errors.New("barrier is broken")

// A Barrier makes a fixed number of parties, processes or goroutines, wait
// for each other: each calls Wait, and all are released together when the
// last one arrives. It can be used again for the next round. A Wait whose
// context is done breaks the barrier, for it and for everyone waiting or
// arriving later, as Python's threading.Barrier does on a timeout; but a
// round the last party completed is never broken afterwards: the party
// whose context ends just then passes with the others.
//
// Its state is one 64-bit word, so that arriving, completing a round and
// breaking it are each one compare-and-swap: the low half, the futex word,
// holds the round's generation and a broken bit; the high half the
// parties arrived so far, or, once broken, the pid of the dead party that
// broke it (0 for a context).
//
// A robust barrier, made with [MakeRobustBarrier], also records the
// processes that joined it (see [Barrier.Join]). A waiter that finds one
// of them dead breaks the barrier with a *[PartyDeadError] naming it, for
// every party, instead of waiting forever for a party that will never
// come; [Barrier.Reset] then forgets the dead and mends it.
type Barrier struct {
	state   *atomic.Uint64
	low     *atomic.Uint32 // the futex word: state's low half
	parties *atomic.Uint32
	nslots  *atomic.Uint32
	members []atomic.Uint64 // robust only: idents of the processes that joined
	ns      *atomic.Uint32  // robust only: pid namespace of the members, see noteNS
	joined  atomic.Bool     // this view has joined
}

const (
	brokenBit = 1 << 31
	genMask   = brokenBit - 1
)

// MakeBarrier makes a barrier for parties parties in mem at byte offset
// off, which must be 8-byte aligned. It takes BarrierSize bytes. Call it
// before any party uses the barrier.
func MakeBarrier(mem []byte, off, parties int) (*Barrier, error) {
	return makeBarrier(mem, off, parties, false)
}

// RobustBarrierSize returns the bytes a robust barrier for parties parties
// takes.
func RobustBarrierSize(parties int) int { return robustBarrierHeader + 8*parties }

// A robust barrier's members follow the plain header and a word for the
// pid namespace of its members.
const robustBarrierHeader = BarrierSize + 8

// MakeRobustBarrier makes a robust barrier for parties parties, with room
// to record as many processes, in mem at byte offset off (8-byte aligned).
// It takes RobustBarrierSize(parties) bytes.
func MakeRobustBarrier(mem []byte, off, parties int) (*Barrier, error) {
	return makeBarrier(mem, off, parties, true)
}

const maxParties = 1 << 16

func makeBarrier(mem []byte, off, parties int, robust bool) (*Barrier, error) {
	if parties < 1 || parties > maxParties {
		return nil, fmt.Errorf("make barrier: %d parties, want 1 to %d", parties, maxParties)
	}
	size, slots := BarrierSize, 0
	if robust {
		size, slots = RobustBarrierSize(parties), parties
	}
	p, err := alignedAt(mem, off, size, "barrier")
	if err != nil {
		return nil, err
	}
	b := barrierAt(p, slots)
	for i := range b.members {
		b.members[i].Store(0)
	}
	if b.ns != nil {
		b.ns.Store(0)
	}
	b.state.Store(0)
	b.nslots.Store(uint32(slots))
	b.parties.Store(uint32(parties))
	return b, nil
}

// BarrierAt returns the barrier, plain or robust, made at off by
// MakeBarrier or MakeRobustBarrier, perhaps by another process.
func BarrierAt(mem []byte, off int) (*Barrier, error) {
	p, err := alignedAt(mem, off, BarrierSize, "barrier")
	if err != nil {
		return nil, err
	}
	h := barrierAt(p, 0)
	parties, slots := h.parties.Load(), h.nslots.Load()
	if parties == 0 {
		return nil, fmt.Errorf("barrier view: no barrier made at offset %d", off)
	}
	if parties > maxParties || (slots != 0 && slots != parties) {
		return nil, &MismatchError{What: fmt.Sprintf("barrier header at offset %d", off),
			Want: fmt.Sprintf("1 to %d parties and 0 or as many member slots", maxParties),
			Got:  fmt.Sprintf("%d parties, %d slots", parties, slots)}
	}
	size := BarrierSize
	if slots != 0 {
		size = RobustBarrierSize(int(slots))
	}
	if _, err := alignedAt(mem, off, size, "barrier"); err != nil {
		return nil, err
	}
	return barrierAt(p, int(slots)), nil
}

func barrierAt(p unsafe.Pointer, slots int) *Barrier {
	s := (*atomic.Uint64)(p)
	b := &Barrier{state: s, low: lowHalf(s),
		parties: (*atomic.Uint32)(unsafe.Add(p, 8)), nslots: (*atomic.Uint32)(unsafe.Add(p, 12))}
	if slots > 0 {
		b.ns = (*atomic.Uint32)(unsafe.Add(p, BarrierSize))
		b.members = unsafe.Slice((*atomic.Uint64)(unsafe.Add(p, robustBarrierHeader)), slots)
	}
	return b
}

// Parties returns the number of parties the barrier waits for.
func (b *Barrier) Parties() int { return int(b.parties.Load()) }

// Join records this process as a member of a robust barrier, so that the
// others learn if it dies, even before its first Wait; Wait joins too. A
// process is recorded once however many of its goroutines are parties.
// On a plain barrier Join does nothing.
func (b *Barrier) Join() error {
	if b.members == nil || b.joined.Load() {
		return nil
	}
	noteNS(b.ns)
	me := uint64(myIdent())
	for i := range b.members {
		if b.members[i].Load() == me {
			b.joined.Store(true)
			return nil
		}
	}
	for i := range b.members {
		if b.members[i].Load() == 0 && b.members[i].CompareAndSwap(0, me) {
			b.joined.Store(true)
			return nil
		}
	}
	return fmt.Errorf("join shared barrier: all %d member slots are taken", len(b.members))
}

// Wait waits until all parties have called Wait, and returns the order in
// which this one arrived, 0 to Parties-1: exactly one party gets each
// number in a round. It fails with an error matching ErrBrokenBarrier if
// the barrier is broken, or breaks while waiting; if ctx is done, the error
// also wraps ctx's error; if a member of a robust barrier died, it is a
// *[PartyDeadError].
func (b *Barrier) Wait(ctx context.Context) (int, error) {
	if err := b.Join(); err != nil {
		return 0, err
	}
	parties := uint64(b.parties.Load())
	var gen uint32
	var n uint64
	for {
		v := b.state.Load()
		lo := uint32(v)
		if lo&brokenBit != 0 {
			return 0, b.brokenErr(v)
		}
		n = v>>32 + 1
		if n == parties {
			if b.state.CompareAndSwap(v, uint64((lo+1)&genMask)) {
				futexWakeWord(b.low, wakeAll)
				return int(n - 1), nil
			}
			continue
		}
		if b.state.CompareAndSwap(v, n<<32|uint64(lo)) {
			gen = lo
			break
		}
	}
	checked := time.Now()
	watches := newWatchSet(b.low)
	defer watches.stop()
	for {
		v := b.state.Load()
		lo := uint32(v)
		if lo != gen {
			if lo == gen|brokenBit {
				return 0, b.brokenErr(v)
			}
			return int(n - 1), nil // the round completed
		}
		if err := ctx.Err(); err != nil {
			// Break the round only if it is still this round: if the
			// last party completed it meanwhile, this party passed.
			if b.state.CompareAndSwap(v, uint64(gen|brokenBit)) {
				futexWakeWord(b.low, wakeAll)
				return 0, fmt.Errorf("barrier wait: %w: %w", ErrBrokenBarrier, err)
			}
			continue
		}
		if b.members != nil && (watches.died() || time.Since(checked) >= waitSlice) {
			checked = time.Now()
			if pid := b.deadMember(watches); pid != 0 {
				if b.state.CompareAndSwap(v, uint64(pid)<<32|uint64(gen|brokenBit)) {
					futexWakeWord(b.low, wakeAll)
				}
				continue // whoever broke it, report what the word says
			}
		}
		futexWaitWord(b.low, gen, slice(ctx))
	}
}

func (b *Barrier) brokenErr(v uint64) error {
	if pid := int(v >> 32); pid != 0 {
		return &PartyDeadError{PID: pid, Primitive: "barrier"}
	}
	return fmt.Errorf("barrier wait: %w", ErrBrokenBarrier)
}

// deadMember returns the pid of a member that is certainly dead, or 0.
// Other members found alive are watched, so that a death wakes this
// waiter at once.
func (b *Barrier) deadMember(watches *watchSet) uint32 {
	me := myIdent()
	for i := range b.members {
		id := ident(b.members[i].Load())
		if id == 0 || id == me {
			continue
		}
		if ownerDead(b.ns, id) {
			return id.pid()
		}
		watches.watch(id)
	}
	return 0
}

// Reset mends a broken barrier for a new round; a robust one also forgets
// its dead members, so that a process replacing one can join. No party
// may be waiting.
func (b *Barrier) Reset() {
	for i := range b.members {
		if id := ident(b.members[i].Load()); id != 0 && ownerDead(b.ns, id) {
			b.members[i].CompareAndSwap(uint64(id), 0)
		}
	}
	for {
		v := b.state.Load()
		if b.state.CompareAndSwap(v, uint64((uint32(v)+1)&genMask)) {
			return
		}
	}
}
