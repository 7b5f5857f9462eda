package ipc

import (
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// The FIFO against a model, under random pushes, held chunks taken over
// whole (adopt) or moved in part (push of a prefix), requeues, reads and
// dropped held chunks: every value comes out once, in the model's order,
// and no chunk is ever in two places (the buffer, the free list, a hold),
// so that reusing one cannot overwrite values still queued.
func TestValueFIFOAdoptModel(t *testing.T) {
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var f valueFIFO
		var model []int // values queued, oldest first
		type held struct {
			c    *valueChunk
			recs []byte
			n    int
		}
		var holds []held
		next, front := 0, -1 // requeued values count down from -1
		size := func() int { return []int{8, 64, 300}[rng.IntN(3)] }
		for step := range 1500 {
			switch op := rng.IntN(6); op {
			case 0: // push
				n := 1 + rng.IntN(40)
				f.push(recsOf(next, n, size()), n)
				for range n {
					model = append(model, next)
					next++
				}
			case 1: // a put waits for room
				n := 1 + rng.IntN(200) // recsOf makes one frame: at most recsBatch bytes
				c := f.hold(recsOf(next, n, size()))
				holds = append(holds, held{c, c.b, n})
				next += n
			case 2: // the oldest held put moves in, whole or in part
				if len(holds) == 0 {
					continue
				}
				h := &holds[0]
				k := h.n
				if rng.IntN(2) == 0 {
					k = 1 + rng.IntN(h.n)
				}
				rec, _ := nextRecord(h.recs, 0)
				first := int(binary.LittleEndian.Uint32(rec))
				for i := range k {
					model = append(model, first+i)
				}
				if k == h.n {
					f.adopt(h.c, h.recs, k)
					holds = holds[1:]
				} else {
					size, _ := recsPrefix(h.recs, k)
					f.push(h.recs[:size], k)
					h.recs, h.n = h.recs[size:], h.n-k
				}
			case 3: // a held put's producer is gone: its chunk is dropped
				if len(holds) > 0 && rng.IntN(4) == 0 {
					holds = holds[1:]
				}
			case 4: // requeue in front
				n := 1 + rng.IntN(5)
				vals := make([]int, n)
				var o outBuf
				v := make([]byte, 8)
				for i := range n {
					vals[i] = front
					binary.LittleEndian.PutUint32(v, uint32(int32(front)))
					o.addRecord(qPuts, v)
					front--
				}
				_, recs, err := parseRecords(o.take(nil)[frameHdr+1:])
				if err != nil {
					t.Fatal(err)
				}
				f.pushFront(recs, n)
				model = append(vals, model...)
			case 5: // read some
				for m := 1 + rng.IntN(400); m > 0 && f.n > 0; {
					recs, k := f.peek(min(m, 1+rng.IntN(50)))
					for off := 0; off < len(recs); {
						var v []byte
						v, off = nextRecord(recs, off)
						got := int(int32(binary.LittleEndian.Uint32(v)))
						if len(model) == 0 || got != model[0] {
							t.Fatalf("seed %d step %d: read %d, want %v", seed, step, got, model[:min(3, len(model))])
						}
						model = model[1:]
					}
					f.drop(len(recs), k)
					m -= k
				}
			}
			if f.n != len(model) {
				t.Fatalf("seed %d step %d: FIFO holds %d values, model %d", seed, step, f.n, len(model))
			}
			where := make(map[*valueChunk]string)
			place := func(c *valueChunk, w string) {
				if o, ok := where[c]; ok {
					t.Fatalf("seed %d step %d: a chunk is both %s and %s", seed, step, o, w)
				}
				where[c] = w
			}
			for _, c := range f.chunks {
				place(c, "queued")
			}
			for _, c := range f.free {
				place(c, "free")
			}
			for _, h := range holds {
				place(h.c, "held")
			}
		}
	}
}

// A producer killed while its puts wait for room, some of them already
// taken over whole by the buffer as a consumer made room: what the buffer
// took is counted (Unfinished, Join) and delivered once, in order; what
// still waited is dropped and counted nowhere.
func TestQueueProducerKilledWhileHeldPutsMoveIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const capacity, size = 1000, 200 // a held put of 300 values fills most of a chunk
	q := newTestQueue(t, capacity)
	cmd := startQueueChild(t, ctx, q, nil, bytesProducerRole, "-id", "3", "-n", "10000000",
		"-size", strconv.Itoa(size), "-window", "4096", "-batch", "300")
	defer cmd.Process().Kill()
	c := testClientOpts(t, q, QueueOptions{GetWindow: 1024}) // asks make room for whole held puts
	next := uint64(0)
	get := func() bool {
		v, err := c.GetBytes(ctx, nil)
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatalf("get %d: %v", next, err)
		}
		if len(v) != size || binary.LittleEndian.Uint32(v) != 3 || binary.LittleEndian.Uint64(v[4:]) != next {
			t.Fatalf("value %d came as %d bytes, producer %d, number %d", next, len(v), binary.LittleEndian.Uint32(v), binary.LittleEndian.Uint64(v[4:]))
		}
		next++
		return true
	}
	for round := range 3 {
		waitStats(t, ctx, q, func(st QueueStats) bool { return st.Len == capacity && st.PendingPuts >= 2000 })
		for range 1500 + 100*round {
			get()
		}
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Len == capacity && st.PendingPuts > 0 })
	if err := cmd.Process().Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("killed producer exited 0")
	}
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 1 })
	if st.PendingPuts != 0 || st.Len > capacity || st.Unfinished < int(next)+st.Len {
		t.Fatalf("after the producer died, %d values read: %+v", next, st)
	}
	q.Close()
	for get() {
	}
	if int(next) != st.Unfinished { // read, prefetched by c, or in the buffer
		t.Fatalf("%d values delivered, the hub counted %d", next, st.Unfinished)
	}
	for range next {
		if err := c.TaskDone(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Join(ctx); err != nil {
		t.Fatalf("join: %v", err)
	}
	if st := q.Stats(); st.Unfinished != 0 || st.Len != 0 || st.PendingPuts != 0 {
		t.Fatalf("after the drain: %+v", st)
	}
}

// Held puts of a few KiB each, taken over one after another, do not leave
// the buffer a mostly empty 64 KiB chunk each: the buffer's memory stays
// within twice the records it holds.
func TestValueFIFOAdoptKeepsChunksFull(t *testing.T) {
	var f valueFIFO
	next, size := 0, 0
	for range 100 {
		const n = 65 // 65 values of 64 bytes: 4420 bytes of records
		c := f.hold(recsOf(next, n, 64))
		size += len(c.b)
		f.adopt(c, c.b, n)
		next += n
	}
	mem := 0
	for _, c := range f.chunks {
		mem += cap(c.b)
	}
	if mem > 2*size+chunkSize {
		t.Fatalf("the buffer takes %d KiB in %d chunks for %d KiB of records", mem>>10, len(f.chunks), size>>10)
	}
}
