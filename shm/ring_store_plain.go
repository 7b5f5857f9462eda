//go:build !race && (amd64 || arm64)

package shm

import "unsafe"

// storePending writes the slot word w at p with a plain store: on a 64-bit
// machine an aligned 8-byte store is never seen torn, so a consumer's
// atomic look at the word at head (seeTail) sees the old word or w, and
// the message is published by the atomic store of tail that follows. A
// locked store here (XCHG on amd64) would stall the producer on every
// message. Under the race detector, and on other machines, it is an
// atomic store (ring_store_atomic.go).
func storePending(p unsafe.Pointer, w uint64) { *(*uint64)(p) = w }
