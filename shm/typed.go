package shm

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
	"unsafe"
)

// A typed array or value starts with a header of [HeaderSize] bytes that says
// what follows, so that a process mapping memory another process laid out
// can check it is reading what was written:
//
//	offset 0  magic   uint32  "ipca" (0x61637069 little-endian)
//	offset 4  version uint32  HeaderVersion
//	offset 8  type    uint32  an ElemType
//	offset 12 size    uint32  bytes per element
//	offset 16 length  uint64  number of elements
//	offset 24 unused  (zero), so that the data is 8-byte aligned
//
// The maker writes the magic last, with an atomic store, so a reader never
// accepts a half-written header.

// HeaderSize is the size of the header in front of every typed array.
const HeaderSize = 32

// HeaderVersion is the layout version written into and checked in every
// header.
const HeaderVersion = 1

const headerMagic = 0x61637069 // "ipca"

// ElemType names the element type of a typed array.
type ElemType uint32

// The element types a typed array can hold.
const (
	TypeInt64 ElemType = iota + 1
	TypeUint64
	TypeFloat64
	TypeUint32
	TypeBytes
)

// String returns the Go name of the element type.
func (t ElemType) String() string {
	switch t {
	case TypeInt64:
		return "int64"
	case TypeUint64:
		return "uint64"
	case TypeFloat64:
		return "float64"
	case TypeUint32:
		return "uint32"
	case TypeBytes:
		return "bytes"
	}
	return fmt.Sprintf("ElemType(%d)", uint32(t))
}

func (t ElemType) size() int {
	switch t {
	case TypeUint32:
		return 4
	case TypeBytes:
		return 1
	}
	return 8
}

// Scalar is the set of element types with atomic operations.
type Scalar interface {
	int64 | uint64 | float64 | uint32
}

func typeOf[T Scalar]() ElemType {
	var z T
	switch any(z).(type) {
	case int64:
		return TypeInt64
	case uint64:
		return TypeUint64
	case float64:
		return TypeFloat64
	}
	return TypeUint32
}

// AnyLen, passed as the length to an Open function, accepts whatever length
// the header records.
const AnyLen = -1

// ArraySize returns the bytes an array of n elements of type t takes,
// header included, rounded up to a multiple of 8 so that arrays can be laid
// one after another. A size that does not fit in an int is math.MaxInt,
// which no memory holds, so a bounds check on it fails instead of passing
// on a wrapped-around small number.
func ArraySize(t ElemType, n int) int {
	if n < 0 || n > (math.MaxInt-HeaderSize-7)/t.size() {
		return math.MaxInt
	}
	return HeaderSize + (n*t.size()+7)&^7
}

// makeHeader writes a header at off and returns the data that follows it.
func makeHeader(mem []byte, off int, t ElemType, n int) (unsafe.Pointer, error) {
	if n < 0 {
		return nil, fmt.Errorf("make %s array: negative length %d", t, n)
	}
	p, err := wordAt(mem, off, ArraySize(t, n))
	if err != nil {
		return nil, fmt.Errorf("make %s array: %w", t, err)
	}
	if uintptr(p)%8 != 0 {
		return nil, fmt.Errorf("make %s array: offset %d is not 8-byte aligned", t, off)
	}
	h := mem[off : off+HeaderSize]
	(*atomic.Uint32)(p).Store(0)
	binary.LittleEndian.PutUint32(h[4:], HeaderVersion)
	binary.LittleEndian.PutUint32(h[8:], uint32(t))
	binary.LittleEndian.PutUint32(h[12:], uint32(t.size()))
	binary.LittleEndian.PutUint64(h[16:], uint64(n))
	clear(h[24:])
	(*atomic.Uint32)(p).Store(headerMagic)
	return data(p, n), nil
}

// checkHeader reads the header at off and checks it describes an array of
// type t with n elements (any number if n is AnyLen). It returns the data
// and its length.
func checkHeader(mem []byte, off int, t ElemType, n int) (unsafe.Pointer, int, error) {
	p, err := wordAt(mem, off, HeaderSize)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s array: %w", t, err)
	}
	if uintptr(p)%8 != 0 {
		return nil, 0, fmt.Errorf("open %s array: offset %d is not 8-byte aligned", t, off)
	}
	h := mem[off : off+HeaderSize]
	if m := (*atomic.Uint32)(p).Load(); m != headerMagic {
		return nil, 0, &MismatchError{What: fmt.Sprintf("header magic at offset %d", off),
			Want: fmt.Sprintf("%#x", headerMagic), Got: fmt.Sprintf("%#x", m)}
	}
	if v := binary.LittleEndian.Uint32(h[4:]); v != HeaderVersion {
		return nil, 0, &MismatchError{What: "header version", Want: fmt.Sprint(HeaderVersion), Got: fmt.Sprint(v)}
	}
	if got := ElemType(binary.LittleEndian.Uint32(h[8:])); got != t {
		return nil, 0, &MismatchError{What: "element type", Want: t.String(), Got: got.String()}
	}
	if s := binary.LittleEndian.Uint32(h[12:]); s != uint32(t.size()) {
		return nil, 0, &MismatchError{What: "element size", Want: fmt.Sprint(t.size()), Got: fmt.Sprint(s)}
	}
	l := binary.LittleEndian.Uint64(h[16:])
	if n != AnyLen && l != uint64(n) {
		return nil, 0, &MismatchError{What: t.String() + " array length", Want: fmt.Sprint(n), Got: fmt.Sprint(l)}
	}
	if l > uint64(len(mem)) || off+ArraySize(t, int(l)) > len(mem) {
		return nil, 0, &MismatchError{What: "size",
			Want: fmt.Sprintf("at least %d bytes for %d %s values at offset %d", ArraySize(t, int(min(l, uint64(len(mem))))), l, t, off),
			Got:  fmt.Sprint(len(mem))}
	}
	return data(p, int(l)), int(l), nil
}

// data returns the first byte after the header at p, or nil for an empty
// array, whose data may lie past the end of the memory.
func data(p unsafe.Pointer, n int) unsafe.Pointer {
	if n == 0 {
		return nil
	}
	return unsafe.Add(p, HeaderSize)
}

// An Array is n values of type T in memory, behind a header, each accessed
// atomically. Float64 values are stored as their IEEE 754 bits; Add on them
// is a compare-and-swap loop. The methods panic on an index out of range,
// as slices do.
type Array[T Scalar] struct {
	p     unsafe.Pointer
	n     int
	float bool
}

// MakeArray writes a header for n values of type T at byte offset off of
// mem (8-byte aligned) and returns the array behind it. The values keep
// whatever mem held, zeros for a new region. It takes ArraySize bytes.
func MakeArray[T Scalar](mem []byte, off, n int) (*Array[T], error) {
	t := typeOf[T]()
	p, err := makeHeader(mem, off, t, n)
	if err != nil {
		return nil, err
	}
	return &Array[T]{p: p, n: n, float: t == TypeFloat64}, nil
}

// OpenArray returns the array another process made with MakeArray at off.
// It fails with a *[MismatchError] if the header is missing, of another
// version or element type, or records a length other than n (unless n is
// AnyLen), or if mem is too small for the values it announces.
func OpenArray[T Scalar](mem []byte, off, n int) (*Array[T], error) {
	t := typeOf[T]()
	p, l, err := checkHeader(mem, off, t, n)
	if err != nil {
		return nil, err
	}
	return &Array[T]{p: p, n: l, float: t == TypeFloat64}, nil
}

// Len returns the number of values.
func (a *Array[T]) Len() int { return a.n }

func (a *Array[T]) wide() bool { var z T; return unsafe.Sizeof(z) == 8 }

func (a *Array[T]) word(i int) unsafe.Pointer {
	if uint(i) >= uint(a.n) {
		panic(fmt.Sprintf("shm: index %d out of range [0:%d]", i, a.n))
	}
	var z T
	return unsafe.Add(a.p, uintptr(i)*unsafe.Sizeof(z))
}

// bits and val reinterpret a T as the unsigned word that stores it.
func bits[T Scalar](v T) uint64 {
	if unsafe.Sizeof(v) == 4 {
		return uint64(*(*uint32)(unsafe.Pointer(&v)))
	}
	return *(*uint64)(unsafe.Pointer(&v))
}

func val[T Scalar](w uint64) T {
	var z T
	if unsafe.Sizeof(z) == 4 {
		u := uint32(w)
		return *(*T)(unsafe.Pointer(&u))
	}
	return *(*T)(unsafe.Pointer(&w))
}

// Load returns value i.
func (a *Array[T]) Load(i int) T {
	p := a.word(i)
	if a.wide() {
		return val[T]((*atomic.Uint64)(p).Load())
	}
	return val[T](uint64((*atomic.Uint32)(p).Load()))
}

// Store sets value i to v.
func (a *Array[T]) Store(i int, v T) {
	p := a.word(i)
	if a.wide() {
		(*atomic.Uint64)(p).Store(bits(v))
		return
	}
	(*atomic.Uint32)(p).Store(uint32(bits(v)))
}

// Swap sets value i to v and returns the old value.
func (a *Array[T]) Swap(i int, v T) T {
	p := a.word(i)
	if a.wide() {
		return val[T]((*atomic.Uint64)(p).Swap(bits(v)))
	}
	return val[T](uint64((*atomic.Uint32)(p).Swap(uint32(bits(v)))))
}

// CompareAndSwap sets value i to new if it is old, and reports whether it
// did. For float64 values the comparison is of bits: -0 is not 0, and a NaN
// equals the same NaN.
func (a *Array[T]) CompareAndSwap(i int, old, new T) bool {
	p := a.word(i)
	if a.wide() {
		return (*atomic.Uint64)(p).CompareAndSwap(bits(old), bits(new))
	}
	return (*atomic.Uint32)(p).CompareAndSwap(uint32(bits(old)), uint32(bits(new)))
}

// Add adds d to value i and returns the new value. Integers wrap around
// as Go's do.
func (a *Array[T]) Add(i int, d T) T {
	p := a.word(i)
	if a.float {
		w := (*atomic.Uint64)(p)
		for {
			old := w.Load()
			f := math.Float64frombits(old) + math.Float64frombits(bits(d))
			if w.CompareAndSwap(old, math.Float64bits(f)) {
				return val[T](math.Float64bits(f))
			}
		}
	}
	// Two's complement: adding the bits of d is adding d, signed or not.
	if a.wide() {
		return val[T]((*atomic.Uint64)(p).Add(bits(d)))
	}
	return val[T](uint64((*atomic.Uint32)(p).Add(uint32(bits(d)))))
}

// A Value is a single shared value of type T: an Array of length one.
type Value[T Scalar] struct{ a Array[T] }

// ValueSize is the bytes a Value takes, header included.
const ValueSize = HeaderSize + 8

// MakeValue writes a header for one value of type T at off and returns it.
func MakeValue[T Scalar](mem []byte, off int) (*Value[T], error) {
	a, err := MakeArray[T](mem, off, 1)
	if err != nil {
		return nil, err
	}
	return &Value[T]{a: *a}, nil
}

// OpenValue returns the value another process made with MakeValue at off,
// or a *[MismatchError] if what is there is not a single value of type T.
func OpenValue[T Scalar](mem []byte, off int) (*Value[T], error) {
	a, err := OpenArray[T](mem, off, 1)
	if err != nil {
		return nil, err
	}
	return &Value[T]{a: *a}, nil
}

// Load returns the value.
func (v *Value[T]) Load() T { return v.a.Load(0) }

// Store sets the value.
func (v *Value[T]) Store(x T) { v.a.Store(0, x) }

// Swap sets the value and returns the old one.
func (v *Value[T]) Swap(x T) T { return v.a.Swap(0, x) }

// CompareAndSwap sets the value to new if it is old, and reports whether it
// did.
func (v *Value[T]) CompareAndSwap(old, new T) bool { return v.a.CompareAndSwap(0, old, new) }

// Add adds d and returns the new value.
func (v *Value[T]) Add(d T) T { return v.a.Add(0, d) }

// Bytes is a shared byte array behind a header. Its bytes are plain memory
// with no atomic access: the processes sharing it must agree on who writes
// when, through a [Mutex], [Event], [Barrier] or a [Flag].
type Bytes struct {
	b []byte
}

// MakeBytes writes a header for n bytes at off and returns them.
func MakeBytes(mem []byte, off, n int) (*Bytes, error) {
	p, err := makeHeader(mem, off, TypeBytes, n)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return &Bytes{}, nil
	}
	return &Bytes{b: unsafe.Slice((*byte)(p), n)}, nil
}

// OpenBytes returns the bytes another process made with MakeBytes at off,
// or a *[MismatchError] as [OpenArray] does.
func OpenBytes(mem []byte, off, n int) (*Bytes, error) {
	p, l, err := checkHeader(mem, off, TypeBytes, n)
	if err != nil {
		return nil, err
	}
	if l == 0 {
		return &Bytes{}, nil
	}
	return &Bytes{b: unsafe.Slice((*byte)(p), l)}, nil
}

// Len returns the number of bytes.
func (b *Bytes) Len() int { return len(b.b) }

// Bytes returns the shared bytes themselves.
func (b *Bytes) Bytes() []byte { return b.b }
