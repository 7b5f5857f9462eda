package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzRingHeader feeds arbitrary bytes to the header decoder: it must never
// panic, and a header it accepts must describe a ring that fits in the
// memory given and that a consumer can read without going out of range.
// The seed corpus is in testdata/fuzz/FuzzRingHeader.
func FuzzRingHeader(f *testing.F) {
	for _, cfg := range []RingConfig{
		{},
		{Mode: MPMC, Slots: 4, MaxMessage: 24, MaxProducers: 2, MaxConsumers: 2},
	} {
		cfg = cfg.withDefaults()
		h := cfg.header()
		b := make([]byte, ringHeaderSize)
		h.encode(b)
		binary.LittleEndian.PutUint32(b, ringMagic)
		f.Add(b, int(h.Size))
	}
	f.Fuzz(func(t *testing.T, b []byte, avail int) {
		h, err := DecodeRingHeader(b, avail)
		if err != nil {
			if !errors.Is(err, ErrRingCorrupt) {
				t.Fatalf("DecodeRingHeader error %v is not ErrRingCorrupt", err)
			}
			return
		}
		if avail < 0 || h.Size > uint64(avail) || int(h.Size) != h.sizeFor() {
			t.Fatalf("accepted header of %d bytes for %d available", h.Size, avail)
		}
		if h.Size > 1<<20 {
			return // valid, but too big to map here
		}
		mem := Local(int(h.Size))
		copy(mem, b[:ringHeaderSize])
		r, err := OpenRing(mem, 0)
		if err != nil {
			t.Fatalf("OpenRing of an accepted header: %v", err)
		}
		// Garbage indices and slot words: reading must stay in range.
		fillFromSeed(mem[ringHeaderSize:], b)
		// As Consumer starts one: at head, with nothing seen past it, so
		// that the first read looks at the slot word at head and tail.
		h0 := r.head.Load()
		c := &RingConsumer{r: r, e: new(ringEntry), s: r.consumers(), opt: RingOptions{}.withDefaults(), head: h0, tail: h0}
		for range 4 {
			if _, err := c.TryRecvBatch(8, func(m []byte) {
				if len(m) > r.MaxMessage() {
					t.Fatalf("message of %d bytes from a %d-byte ring", len(m), r.MaxMessage())
				}
			}); err != nil && !errors.Is(err, ErrRingCorrupt) {
				t.Fatalf("TryRecvBatch: %v", err)
			}
		}
	})
}

// fillFromSeed fills mem with bytes derived from seed, so that the fuzzer's
// input decides the indices and slot words too.
func fillFromSeed(mem, seed []byte) {
	if len(seed) == 0 {
		return
	}
	for i := range mem {
		mem[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
}

// FuzzRingSlot checks the slot decoder against any word and position: a
// length it returns never exceeds the slot's payload, and a free slot's
// word published by its producer decodes as that message.
func FuzzRingSlot(f *testing.F) {
	f.Add(uint64(0), uint64(0), uint32(56))
	f.Add(slotWord(1, 56), uint64(0), uint32(56))
	f.Add(slotWord(0, tombstone), uint64(1<<32-1), uint32(8))
	f.Add(slotWord(5, 57), uint64(4), uint32(56))
	f.Fuzz(func(t *testing.T, w, p uint64, max uint32) {
		st, n, err := decodeSlot(w, p, max)
		if err != nil {
			if !errors.Is(err, ErrRingCorrupt) || st != slotFull {
				t.Fatalf("decodeSlot(%#x, %d, %d) = %v, %v", w, p, max, st, err)
			}
			return
		}
		if n > max || (st != slotFull && n != 0) {
			t.Fatalf("decodeSlot(%#x, %d, %d) = %v, length %d", w, p, max, st, n)
		}
		if l := uint32(w >> 32); l <= max {
			pub := slotWord(uint32(p+1), l)
			if st, n, err := decodeSlot(pub, p, max); err != nil || st != slotFull || n != l {
				t.Fatalf("published word %#x for %d decodes as %v, %d, %v", pub, p, st, n, err)
			}
		}
	})
}

// TestRingCorruptSlotReported: a slot length no producer could write is an
// error matching ErrRingCorrupt, never an out-of-range read.
func TestRingCorruptSlotReported(t *testing.T) {
	for _, mode := range []RingMode{SPSC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := newLocalRing(t, RingConfig{Mode: mode, Slots: 4, MaxMessage: 16})
			p, err := r.Producer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.Send(context.Background(), []byte("hello")); err != nil {
				t.Fatal(err)
			}
			w := (*uint64)(r.slot(r.head.Load()))
			*w = *w&0xFFFFFFFF | 1000<<32
			c, err := r.Consumer(RingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			n, err := c.TryRecvBatch(4, func(m []byte) { t.Errorf("got a %d-byte message from a corrupt slot", len(m)) })
			if !errors.Is(err, ErrRingCorrupt) || n != 0 {
				t.Errorf("TryRecvBatch = %d, %v; want 0, ErrRingCorrupt", n, err)
			}
		})
	}
}
