package shm

import (
	"testing"
)

// FuzzOpenHeader feeds arbitrary bytes, as another process could have
// left them in shared memory, to every decoder of a shared header: the
// typed array header, the robust semaphore's and the barrier's. Whatever
// they accept must lie within the memory: every element, permit or member
// slot they announce is touched. The seed corpus is in
// testdata/fuzz/FuzzOpenHeader.
func FuzzOpenHeader(f *testing.F) {
	mem := Local(256)
	if _, err := MakeArray[int64](mem, 0, 4); err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte(nil), mem...), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, off uint16, kind uint8) {
		if len(data) > 1<<16 {
			return
		}
		mem := Local(len(data))
		copy(mem, data)
		o := int(off)
		switch kind % 6 {
		case 0:
			if a, err := OpenArray[int64](mem, o, AnyLen); err == nil && a.Len() > 0 {
				a.Load(a.Len() - 1)
			}
		case 1:
			if a, err := OpenArray[uint32](mem, o, AnyLen); err == nil && a.Len() > 0 {
				a.Load(a.Len() - 1)
			}
		case 2:
			if b, err := OpenBytes(mem, o, AnyLen); err == nil && b.Len() > 0 {
				_ = b.Bytes()[b.Len()-1]
				if o+HeaderSize+b.Len() > len(mem) {
					t.Fatalf("OpenBytes at %d of %d bytes accepted %d bytes", o, len(mem), b.Len())
				}
			}
		case 3:
			if s, err := RobustSemaphoreAt(mem, o); err == nil {
				s.Value() // reads every permit slot
				s.Holders()
			}
		case 4:
			if b, err := BarrierAt(mem, o); err == nil {
				if b.Parties() < 1 || b.Parties() > maxParties {
					t.Fatalf("BarrierAt accepted %d parties", b.Parties())
				}
				for i := range b.members {
					b.members[i].Load()
				}
			}
		case 5:
			if a, err := OpenArray[float64](mem, o, 1); err == nil {
				a.Load(0)
			}
		}
	})
}
