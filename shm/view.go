package shm

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// This file holds the package's unsafe code: it lays sync/atomic types over
// bytes. A mapping starts on a page boundary, so aligning an offset within
// it aligns the address; the checks below make that explicit.

// A Flag is a 32-bit word that any number of processes or goroutines set,
// clear and test atomically. Its zero value (all bytes zero) is clear.
type Flag struct {
	v *atomic.Uint32
}

// FlagAt returns the flag stored in mem at byte offset off, which must be
// 4-byte aligned in memory.
func FlagAt(mem []byte, off int) (*Flag, error) {
	p, err := wordAt(mem, off, 4)
	if err != nil {
		return nil, fmt.Errorf("flag view: %w", err)
	}
	return &Flag{v: (*atomic.Uint32)(p)}, nil
}

// Set sets the flag. It reports whether this call changed it, so that of
// several racing setters exactly one sees true.
func (f *Flag) Set() bool { return f.v.CompareAndSwap(0, 1) }

// IsSet reports whether the flag is set.
func (f *Flag) IsSet() bool { return f.v.Load() != 0 }

// Clear clears the flag.
func (f *Flag) Clear() { f.v.Store(0) }

// An Int64Array is n int64 values in memory, each accessed atomically.
type Int64Array struct {
	s []atomic.Int64
}

// Int64sAt returns the array of n int64 values stored in mem from byte offset
// off, which must be 8-byte aligned in memory.
func Int64sAt(mem []byte, off, n int) (*Int64Array, error) {
	if n < 0 {
		return nil, fmt.Errorf("int64 view: negative length %d", n)
	}
	if n == 0 {
		return &Int64Array{}, nil
	}
	p, err := wordAt(mem, off, 8*n)
	if err != nil {
		return nil, fmt.Errorf("int64 view: %w", err)
	}
	if uintptr(p)%8 != 0 {
		return nil, fmt.Errorf("int64 view: offset %d is not 8-byte aligned", off)
	}
	return &Int64Array{s: unsafe.Slice((*atomic.Int64)(p), n)}, nil
}

// Len returns the number of values.
func (a *Int64Array) Len() int { return len(a.s) }

// Load returns value i.
func (a *Int64Array) Load(i int) int64 { return a.s[i].Load() }

// Store sets value i to v.
func (a *Int64Array) Store(i int, v int64) { a.s[i].Store(v) }

// Add adds d to value i and returns the new value.
func (a *Int64Array) Add(i int, d int64) int64 { return a.s[i].Add(d) }

// CompareAndSwap sets value i to new if it is old, and reports whether it did.
func (a *Int64Array) CompareAndSwap(i int, old, new int64) bool {
	return a.s[i].CompareAndSwap(old, new)
}

// At returns value i as an *atomic.Int64, for loops that touch one slot often.
func (a *Int64Array) At(i int) *atomic.Int64 { return &a.s[i] }

// Local returns size zeroed bytes of ordinary Go memory, 8-byte aligned, for
// views shared between goroutines of one process only.
func Local(size int) []byte {
	if size <= 0 {
		return nil
	}
	words := make([]uint64, (size+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), size)
}

func wordAt(mem []byte, off, size int) (unsafe.Pointer, error) {
	if off < 0 || size <= 0 || off > len(mem) || len(mem)-off < size {
		return nil, fmt.Errorf("%d bytes at offset %d do not fit in %d bytes", size, off, len(mem))
	}
	p := unsafe.Pointer(&mem[off])
	if uintptr(p)%4 != 0 {
		return nil, fmt.Errorf("offset %d is not 4-byte aligned", off)
	}
	return p, nil
}
