package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A ring's memory, from its byte offset (64-byte aligned), in 64-byte cache
// lines so that words written by producers and words written by consumers
// never share a line:
//
//	line 0  header: magic "ipcr", version, mode, slots, slot size,
//	        max producers, max consumers, total size (see RingHeader)
//	line 1  tail    uint64: next position producers claim (MPMC) or the
//	        end of the last batch published (SPSC); written by producers
//	line 2  head    uint64: next position consumers claim (MPMC) or the
//	        released start of data (SPSC); taken uint64 (SPSC: the end of
//	        what the consumer has handed to its caller); written by
//	        consumers only
//	line 3  wait words: notEmpty, emptyWaiters, notFull, fullWaiters
//	line 4  shared counters: lost by producers, lost by consumers, dead
//	        producers, dead consumers, producers ever, consumers ever
//	then    producer table, consumer table: 16 bytes per entry, a
//	        process record (pid<<32 | start time) and an intent word
//	        (see Ring), each table rounded up to whole lines
//	then    slots: Slots entries of SlotSize bytes, each an 8-byte slot
//	        word (sequence in the low 32 bits, length in the high 32)
//	        followed by the payload. SPSC (version 3 on): a slot word is
//	        written before the store of tail that publishes it and read
//	        after the load of tail that shows it; MPMC: each slot word is
//	        the slot's hand-over
const (
	ringLine       = 64
	ringMagic      = 0x72637069 // "ipcr" little-endian
	RingVersion    = 3          // the layout and protocol version written into and checked in a ring's header (3: SPSC publishes by tail)
	ringHeaderSize = ringLine

	ringOffTail    = 1 * ringLine
	ringOffHead    = 2 * ringLine
	ringOffTaken   = 2*ringLine + 8
	ringOffWait    = 3 * ringLine
	ringOffCounts  = 4 * ringLine
	ringOffTables  = 5 * ringLine
	ringEntrySize  = 16
	slotWordSize   = 8
	tombstone      = 0xFFFFFFFF // slot length of a message a dead producer claimed and never published
	maxRingSlots   = 1 << 30
	maxRingSlot    = 1 << 24
	maxRingMembers = 1 << 12
)

// RingMode says who may use a ring's two ends.
type RingMode uint32

const (
	// SPSC: one producer process and one consumer process at a time. The
	// fast path: a producer publishes the end of its data with one store
	// per batch, the consumer releases slots with one store per batch.
	SPSC RingMode = 1
	// MPMC: any number of producers and consumers, up to the table sizes,
	// each slot handed over by its own sequence word.
	MPMC RingMode = 2
)

func (m RingMode) String() string {
	switch m {
	case SPSC:
		return "spsc"
	case MPMC:
		return "mpmc"
	}
	return fmt.Sprintf("RingMode(%d)", uint32(m))
}

// RingConfig describes a ring to make. Zero fields take their defaults.
type RingConfig struct {
	Mode RingMode // SPSC or MPMC; zero means SPSC

	// Slots is the capacity in messages, a power of two; zero means 1024.
	Slots int

	// MaxMessage is the largest message in bytes; zero means 64. A slot
	// takes MaxMessage plus an 8-byte slot word, rounded up to 8 bytes.
	MaxMessage int

	// MaxProducers and MaxConsumers size the tables of registered
	// processes (MPMC only; an SPSC ring has one of each). Zero means 16.
	// A dead process's entry is reused, so this bounds the processes
	// attached at once, not over the ring's life.
	MaxProducers int
	MaxConsumers int

	// Start is the first position of the index counters. Zero is fine;
	// tests set it near 2^64 to run the ring across wrap-around.
	Start uint64
}

func (c RingConfig) withDefaults() RingConfig {
	if c.Mode == 0 {
		c.Mode = SPSC
	}
	if c.Slots == 0 {
		c.Slots = 1024
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = 64
	}
	if c.MaxProducers == 0 {
		c.MaxProducers = 16
	}
	if c.MaxConsumers == 0 {
		c.MaxConsumers = 16
	}
	if c.Mode == SPSC {
		c.MaxProducers, c.MaxConsumers = 1, 1
	}
	return c
}

func (c RingConfig) check() error {
	switch {
	case c.Mode != SPSC && c.Mode != MPMC:
		return fmt.Errorf("mode %d is neither SPSC nor MPMC", c.Mode)
	case c.Slots < 2 || c.Slots > maxRingSlots || c.Slots&(c.Slots-1) != 0:
		return fmt.Errorf("%d slots: want a power of two from 2 to %d", c.Slots, maxRingSlots)
	case c.MaxMessage < 1 || c.MaxMessage > maxRingSlot-slotWordSize:
		return fmt.Errorf("max message %d: want 1 to %d bytes", c.MaxMessage, maxRingSlot-slotWordSize)
	case c.MaxProducers < 1 || c.MaxProducers > maxRingMembers || c.MaxConsumers < 1 || c.MaxConsumers > maxRingMembers:
		return fmt.Errorf("%d producers, %d consumers: want 1 to %d each", c.MaxProducers, c.MaxConsumers, maxRingMembers)
	}
	return nil
}

func (c RingConfig) slotSize() int { return (slotWordSize + c.MaxMessage + 7) &^ 7 }

func tableSize(n int) int { return (n*ringEntrySize + ringLine - 1) &^ (ringLine - 1) }

// RingHeader is what a ring's first cache line records.
type RingHeader struct {
	Version      uint32
	Mode         RingMode
	Slots        uint32
	SlotSize     uint32 // bytes per slot, slot word included
	MaxProducers uint32
	MaxConsumers uint32
	Size         uint64 // bytes the whole ring takes
}

func (h RingHeader) producersOff() int { return ringOffTables }
func (h RingHeader) consumersOff() int { return ringOffTables + tableSize(int(h.MaxProducers)) }
func (h RingHeader) slotsOff() int {
	return h.consumersOff() + tableSize(int(h.MaxConsumers))
}

// RingSize returns the bytes a ring made with cfg takes, or an error if
// cfg is invalid.
func RingSize(cfg RingConfig) (int, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return 0, fmt.Errorf("ring size: %w", err)
	}
	return cfg.header().sizeFor(), nil
}

func (c RingConfig) header() RingHeader {
	h := RingHeader{
		Version: RingVersion, Mode: c.Mode, Slots: uint32(c.Slots), SlotSize: uint32(c.slotSize()),
		MaxProducers: uint32(c.MaxProducers), MaxConsumers: uint32(c.MaxConsumers),
	}
	h.Size = uint64(h.sizeFor())
	return h
}

func (h RingHeader) sizeFor() int { return h.slotsOff() + int(h.Slots)*int(h.SlotSize) }

// encode writes h, without the magic, into b (ringHeaderSize bytes).
func (h RingHeader) encode(b []byte) {
	clear(b[4:ringHeaderSize])
	binary.LittleEndian.PutUint32(b[4:], h.Version)
	binary.LittleEndian.PutUint32(b[8:], uint32(h.Mode))
	binary.LittleEndian.PutUint32(b[12:], h.Slots)
	binary.LittleEndian.PutUint32(b[16:], h.SlotSize)
	binary.LittleEndian.PutUint32(b[20:], h.MaxProducers)
	binary.LittleEndian.PutUint32(b[24:], h.MaxConsumers)
	binary.LittleEndian.PutUint64(b[32:], h.Size)
}

// ErrRingCorrupt is matched by errors.Is for every *[RingError]: the memory
// does not hold a ring this code can use, or a slot in it holds what no
// producer could have written.
var ErrRingCorrupt = errors.New("corrupt or foreign ring")

// A RingError names what is wrong with a ring's header or slot.
type RingError struct {
	What string // the field: "magic", "version", "slots", ...
	Want string
	Got  string
}

func (e *RingError) Error() string {
	return fmt.Sprintf("shared ring %s: want %s, got %s", e.What, e.Want, e.Got)
}

// Is makes errors.Is(err, ErrRingCorrupt) hold.
func (e *RingError) Is(target error) bool { return target == ErrRingCorrupt }

// DecodeRingHeader checks the header in b (at least 64 bytes; the first
// line of a ring) against avail, the bytes of memory from the ring's start,
// and returns it. Every field is checked against the others, so a header
// that passes describes a ring that fits in avail: a corrupt or foreign
// header gives a *[RingError] and never an out-of-range access later.
func DecodeRingHeader(b []byte, avail int) (RingHeader, error) {
	if len(b) < ringHeaderSize {
		return RingHeader{}, &RingError{What: "header", Want: fmt.Sprintf("%d bytes", ringHeaderSize), Got: fmt.Sprint(len(b))}
	}
	if m := binary.LittleEndian.Uint32(b); m != ringMagic {
		return RingHeader{}, &RingError{What: "magic", Want: fmt.Sprintf("%#x", ringMagic), Got: fmt.Sprintf("%#x", m)}
	}
	h := RingHeader{
		Version:      binary.LittleEndian.Uint32(b[4:]),
		Mode:         RingMode(binary.LittleEndian.Uint32(b[8:])),
		Slots:        binary.LittleEndian.Uint32(b[12:]),
		SlotSize:     binary.LittleEndian.Uint32(b[16:]),
		MaxProducers: binary.LittleEndian.Uint32(b[20:]),
		MaxConsumers: binary.LittleEndian.Uint32(b[24:]),
		Size:         binary.LittleEndian.Uint64(b[32:]),
	}
	bad := func(what, want string, got any) (RingHeader, error) {
		return RingHeader{}, &RingError{What: what, Want: want, Got: fmt.Sprint(got)}
	}
	switch {
	case h.Version != RingVersion:
		return bad("version", fmt.Sprint(RingVersion), h.Version)
	case h.Mode != SPSC && h.Mode != MPMC:
		return bad("mode", "spsc or mpmc", h.Mode)
	case h.Slots < 2 || h.Slots > maxRingSlots || h.Slots&(h.Slots-1) != 0:
		return bad("slots", "a power of two", h.Slots)
	case h.SlotSize < slotWordSize+1 || h.SlotSize > maxRingSlot || h.SlotSize%8 != 0:
		return bad("slot size", "a multiple of 8 from 16 bytes", h.SlotSize)
	case h.MaxProducers < 1 || h.MaxProducers > maxRingMembers || h.MaxConsumers < 1 || h.MaxConsumers > maxRingMembers:
		return bad("tables", fmt.Sprintf("1 to %d entries", maxRingMembers), fmt.Sprintf("%d producers, %d consumers", h.MaxProducers, h.MaxConsumers))
	case h.Mode == SPSC && (h.MaxProducers != 1 || h.MaxConsumers != 1):
		return bad("tables", "one producer and one consumer for spsc", fmt.Sprintf("%d, %d", h.MaxProducers, h.MaxConsumers))
	case h.Size != uint64(h.sizeFor()):
		return bad("size", fmt.Sprint(h.sizeFor()), h.Size)
	case avail < 0 || h.Size > uint64(avail):
		return bad("size", fmt.Sprintf("at most the %d bytes mapped", avail), h.Size)
	}
	return h, nil
}

// Slot states, as a slot word says them relative to a position p that maps
// to the slot (MPMC; an SPSC ring uses only the length).
type slotState int

const (
	slotFree      slotState = iota // seq == p: a producer may claim p
	slotFull                       // seq == p+1: the message for p is published
	slotTombstone                  // seq == p+1, length tombstone: p's producer died
	slotBehind                     // seq behind p: the previous lap still uses it
	slotAhead                      // seq ahead: p is gone already
)

func slotWord(seq uint32, n uint32) uint64 { return uint64(seq) | uint64(n)<<32 }

// decodeSlot reads slot word w as seen by the holder of position p in a
// ring whose slots carry at most max payload bytes. A published length
// over max is corruption: it is reported, never used to index memory.
func decodeSlot(w uint64, p uint64, max uint32) (slotState, uint32, error) {
	seq, n := uint32(w), uint32(w>>32)
	switch d := int32(seq - uint32(p)); {
	case d == 0:
		return slotFree, 0, nil
	case d == 1:
		if n == tombstone {
			return slotTombstone, 0, nil
		}
		if n > max {
			return slotFull, 0, &RingError{What: fmt.Sprintf("slot length at position %d", p), Want: fmt.Sprintf("at most %d", max), Got: fmt.Sprint(n)}
		}
		return slotFull, n, nil
	case d < 0:
		return slotBehind, 0, nil
	}
	return slotAhead, 0, nil
}
