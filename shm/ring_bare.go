package shm

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// BareSlot and BarePublish fix the bare ring's shape: 64-byte slots, the
// index published once per 32 messages.
const (
	BareSlot    = 64
	BarePublish = 32
)

// A BareRing is the baseline a [Ring] is measured against: fixed 64-byte
// messages in 64-byte slots, one producer and one consumer that spin, each
// publishing its index once per BarePublish messages. It has no framing,
// no sleeping, no crash safety and no header: it is as fast as a ring of
// shared memory between two processes gets, and nothing else.
type BareRing struct {
	tail, head *atomic.Uint64
	slots      []byte
	mask       uint64
}

// BareRingSize returns the bytes a bare ring of slots slots takes.
func BareRingSize(slots int) int { return 2*ringLine + slots*BareSlot }

// BareRingAt returns the bare ring of slots slots (a power of two, at
// least 2*BarePublish) at the start of mem, which must be 64-byte aligned.
// Both processes call it; memory of zeros is an empty ring.
func BareRingAt(mem []byte, slots int) (*BareRing, error) {
	if slots < 2*BarePublish || slots&(slots-1) != 0 {
		return nil, fmt.Errorf("bare ring: %d slots, want a power of two from %d", slots, 2*BarePublish)
	}
	p, err := wordAt(mem, 0, BareRingSize(slots))
	if err != nil {
		return nil, fmt.Errorf("bare ring: %w", err)
	}
	if uintptr(p)%ringLine != 0 {
		return nil, fmt.Errorf("bare ring: memory is not 64-byte aligned")
	}
	return &BareRing{
		tail:  (*atomic.Uint64)(p),
		head:  (*atomic.Uint64)(unsafe.Add(p, ringLine)),
		slots: mem[2*ringLine : BareRingSize(slots)],
		mask:  uint64(slots - 1),
	}, nil
}

// Send writes n copies of msg (64 bytes), message i carrying i in its
// first 8 bytes, spinning while the ring is full. n must be a multiple of
// BarePublish.
func (b *BareRing) Send(n uint64, msg *[BareSlot]byte) {
	t := b.tail.Load()
	end := t + n
	head := b.head.Load()
	for t != end {
		for t+BarePublish-head > b.mask+1 {
			head = b.head.Load()
		}
		for range BarePublish {
			s := b.slots[(t&b.mask)*BareSlot:][:BareSlot]
			copy(s, msg[:])
			binary.LittleEndian.PutUint64(s, t)
			t++
		}
		b.tail.Store(t)
	}
}

// Recv reads n messages, copying each into buf, spinning while the ring is
// empty, and returns the sum of their first 8 bytes.
// n must be a multiple of BarePublish.
func (b *BareRing) Recv(n uint64, buf *[BareSlot]byte) uint64 {
	h := b.head.Load()
	end := h + n
	var sum uint64
	tail := b.tail.Load()
	for h != end {
		for tail == h {
			tail = b.tail.Load()
		}
		stop := tail
		if stop-h > end-h {
			stop = end
		}
		for ; h != stop; h++ {
			s := b.slots[(h&b.mask)*BareSlot:][:BareSlot]
			copy(buf[:], s)
			sum += binary.LittleEndian.Uint64(buf[:])
			if h&(BarePublish-1) == BarePublish-1 {
				b.head.Store(h + 1)
			}
		}
	}
	b.head.Store(h)
	return sum
}

// Sent returns the producer's index as last published: the messages sent
// so far, rounded down to a multiple of BarePublish. A receiver whose
// producer died sends the rest with Send(n-Sent(), ...) to end its Recv.
func (b *BareRing) Sent() uint64 { return b.tail.Load() }
