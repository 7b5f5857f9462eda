package ipc

// valueFIFO is the hub's buffer: records (see queue_wire_linux.go) in
// chunks, oldest first. Values are copied in once and out once; chunks of
// the usual size are reused.
type valueFIFO struct {
	chunks []*valueChunk
	n      int // values held
	free   []*valueChunk
}

// maxFreeChunks is how many empty chunks (64 MiB) the hub keeps for reuse:
// enough for the buffer at its fullest, so that it is not allocated again
// (zeroed and faulted in) every time it fills.
const maxFreeChunks = 1024

type valueChunk struct {
	b   []byte // records; b[off:] are not yet taken
	off int
	n   int // values in b[off:]
}

// push appends n records.
func (f *valueFIFO) push(recs []byte, n int) {
	if n == 0 {
		return
	}
	f.n += n
	if k := len(f.chunks); k > 0 {
		if t := f.chunks[k-1]; len(t.b)+len(recs) <= cap(t.b) {
			t.b = append(t.b, recs...)
			t.n += n
			return
		}
	}
	c := f.chunk(len(recs))
	c.b = append(c.b, recs...)
	c.n = n
	f.chunks = append(f.chunks, c)
}

// adopt appends the n records at the end of c, a chunk from hold, taking
// the chunk over instead of copying them when they fill at least half of
// it. Fewer are copied into the last chunk, so that the buffer's chunks
// stay at least half full: a run of held puts of a few KiB each does not
// leave a mostly empty 64 KiB chunk each (16 times the memory).
func (f *valueFIFO) adopt(c *valueChunk, recs []byte, n int) {
	if 2*len(recs) < cap(c.b) {
		f.push(recs, n)
		f.release(c)
		return
	}
	f.n += n
	c.off, c.n = len(c.b)-len(recs), n
	f.chunks = append(f.chunks, c)
}

// pushFront puts n records before every other value, in their order.
func (f *valueFIFO) pushFront(recs []byte, n int) {
	if n == 0 {
		return
	}
	f.n += n
	c := f.chunk(len(recs))
	c.b = append(c.b, recs...)
	c.n = n
	f.chunks = append(f.chunks, nil)
	copy(f.chunks[1:], f.chunks)
	f.chunks[0] = c
}

func (f *valueFIFO) chunk(size int) *valueChunk {
	if size <= chunkSize && len(f.free) > 0 {
		c := f.free[len(f.free)-1]
		f.free = f.free[:len(f.free)-1]
		return c
	}
	return &valueChunk{b: make([]byte, 0, max(size, chunkSize))}
}

// peek returns up to max of the oldest values, as records, all from one
// chunk, and how many there are. They stay in the FIFO until drop.
func (f *valueFIFO) peek(max int) ([]byte, int) {
	c := f.chunks[0]
	if max >= c.n {
		return c.b[c.off:], c.n
	}
	size, k := recsPrefix(c.b[c.off:], max)
	return c.b[c.off : c.off+size], k
}

// drop removes what peek returned.
func (f *valueFIFO) drop(size, k int) {
	c := f.chunks[0]
	c.off += size
	c.n -= k
	f.n -= k
	if c.n > 0 {
		return
	}
	f.chunks[0] = nil
	f.chunks = f.chunks[1:]
	f.release(c)
}

// hold returns a chunk holding a copy of recs, for values kept apart from
// the FIFO (puts waiting for room). Give it back with release.
func (f *valueFIFO) hold(recs []byte) *valueChunk {
	c := f.chunk(len(recs))
	c.b = append(c.b, recs...)
	return c
}

// release takes back a chunk from hold.
func (f *valueFIFO) release(c *valueChunk) {
	if cap(c.b) == chunkSize && len(f.free) < maxFreeChunks {
		c.b, c.off, c.n = c.b[:0], 0, 0
		f.free = append(f.free, c)
	}
}

// reset drops everything.
func (f *valueFIFO) reset() { *f = valueFIFO{} }
