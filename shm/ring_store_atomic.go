//go:build race || !(amd64 || arm64)

package shm

import (
	"sync/atomic"
	"unsafe"
)

// storePending writes the slot word w at p with an atomic store: under the
// race detector, where a consumer's atomic look at the word (seeTail) and
// a plain store would be reported as a race, and on machines where a
// plain 8-byte store may be split in two (ring_store_plain.go).
func storePending(p unsafe.Pointer, w uint64) { (*atomic.Uint64)(p).Store(w) }
