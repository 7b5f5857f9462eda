package ipc

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// recsOf encodes values first..first+n-1, each size bytes starting with
// its number, as records.
func recsOf(first, n, size int) []byte {
	var o outBuf
	v := make([]byte, size)
	for i := range n {
		binary.LittleEndian.PutUint32(v, uint32(first+i))
		o.addRecord(qPuts, v)
	}
	_, recs, err := parseRecords(o.take(nil)[frameHdr+1:])
	if err != nil {
		panic(err)
	}
	return recs
}

// A chunk of held puts taken over by the FIFO keeps its values in order
// with what was pushed before and after it, small runs included, and goes
// back to the free list once drained.
func TestValueFIFOAdoptKeepsOrder(t *testing.T) {
	var f valueFIFO
	next := 0
	push := func(n int) {
		f.push(recsOf(next, n, 64), n)
		next += n
	}
	adopt := func(n, skip int) {
		// A held chunk whose first skip values were pushed already.
		c := f.hold(recsOf(next-skip, n+skip, 64))
		_, recs := nextRecords(c.b, skip)
		f.adopt(c, recs, n)
		next += n
	}
	push(3)
	adopt(500, 0) // taken over: 500*68 bytes are over half a chunk
	push(5)       // appended to the adopted chunk's spare room
	adopt(2, 0)   // too small: copied
	adopt(600, 7) // taken over from its eighth value on
	push(1)
	if f.n != next {
		t.Fatalf("FIFO holds %d values, want %d", f.n, next)
	}
	for want := 0; want < next; {
		recs, k := f.peek(13)
		for off := 0; off < len(recs); {
			var v []byte
			v, off = nextRecord(recs, off)
			if got := int(binary.LittleEndian.Uint32(v)); got != want {
				t.Fatalf("value %d read as %d", want, got)
			}
			want++
		}
		f.drop(len(recs), k)
	}
	if f.n != 0 || len(f.chunks) != 0 {
		t.Fatalf("FIFO after draining: n=%d, %d chunks", f.n, len(f.chunks))
	}
	if len(f.free) == 0 {
		t.Fatal("no drained chunk went back to the free list")
	}
}

// nextRecords skips the first n records of recs and returns how many bytes
// they took and the rest.
func nextRecords(recs []byte, n int) (int, []byte) {
	size, _ := recsPrefix(recs, n)
	return size, recs[size:]
}

// Puts held while the buffer is full move into it whole as room appears
// (the FIFO takes their chunk over) or in part (copied): every value still
// arrives once, in order.
func TestQueueHeldPutsKeepOrder(t *testing.T) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, tc := range []struct{ capacity, getWindow, batch, n int }{
		{100, 0, 500, 1_000}, // room for one value of a held put at a time
		{100, 1000, 500, 200_000},
		{4096, 3000, 1000, 200_000}, // room for whole held puts
	} {
		q := newTestQueue(t, tc.capacity)
		prod := testClientOpts(t, q, QueueOptions{PutWindow: 8192})
		cons := testClientOpts(t, q, QueueOptions{GetWindow: tc.getWindow})
		n := tc.n
		errc := make(chan error, 1)
		wg.Go(func() {
			vs := make([][]byte, tc.batch)
			for i := range vs {
				vs[i] = make([]byte, 64)
			}
			for s := 0; s < n; s += tc.batch {
				for j, v := range vs {
					binary.LittleEndian.PutUint32(v, uint32(s+j))
				}
				if _, err := prod.PutBatch(ctx, vs); err != nil {
					errc <- err
					return
				}
			}
			errc <- prod.Flush(ctx)
		})
		dst := make([][]byte, 7)
		for want := 0; want < n; {
			k, err := cons.GetBatch(ctx, dst)
			if err != nil {
				t.Fatalf("capacity=%d get %d: %v", tc.capacity, want, err)
			}
			for _, v := range dst[:k] {
				if got := int(binary.LittleEndian.Uint32(v)); got != want {
					t.Fatalf("capacity=%d: value %d read as %d", tc.capacity, want, got)
				}
				want++
			}
		}
		if err := <-errc; err != nil {
			t.Fatalf("capacity=%d put: %v", tc.capacity, err)
		}
		if st := q.Stats(); st.Len != 0 || st.PendingPuts != 0 {
			t.Fatalf("capacity=%d hub after the run: %+v", tc.capacity, st)
		}
	}
}
