package shm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrNotOwner is returned by [RLock.Unlock] when the caller does not hold
// the lock with the token it passed.
var ErrNotOwner = errors.New("lock not held with this token")

// A Token names one holder of an [RLock] within a process. Goroutines move
// between threads and have no identity of their own, so the caller holds
// a token instead: a goroutine, or a chain of calls, takes one with
// [NewToken] and passes it to every Lock and Unlock. A token must not be
// used by two goroutines at once.
type Token uint64

// Tokens count up from a random start, so that two processes hold equal
// tokens only by a chance of about one in 2^64 per token: a process that
// takes over an RLock from a dead one finds the dead one's token still in
// the token word until it writes its own, and no token of its other
// goroutines may pass for it meanwhile.
var (
	tokenBase = sync.OnceValue(rand.Uint64)
	lastToken atomic.Uint64
)

// NewToken returns a token no other call in this process returned and,
// but for a chance of about 2^-64, no other process either.
func NewToken() Token {
	for {
		if t := tokenBase() + lastToken.Add(1); t != 0 {
			return Token(t)
		}
	}
}

// An RLock is a recursive mutex in memory shared between processes, like
// Python's threading.RLock: the holder may lock it again, and it is free
// once unlocked as many times as it was locked. The owner is a process
// (pid and start time, as for [Mutex]) together with the [Token] the
// caller passed, and a count says how many times it is held. Other tokens
// of the same process wait like other processes do.
//
// A waiter that finds the owning process dead takes the lock over, with a
// count of one, and gets an *[OwnerDeadError] as from a Mutex. An RLock
// takes RLockSize bytes; all zeros is unlocked.
type RLock struct {
	mu    *Mutex         // the first MutexSize bytes
	count *atomic.Uint32 // in the Mutex's spare half word
	token *atomic.Uint64
}

// RLockAt returns the recursive lock stored in mem at byte offset off,
// which must be 8-byte aligned. It takes RLockSize bytes.
func RLockAt(mem []byte, off int) (*RLock, error) {
	p, err := alignedAt(mem, off, RLockSize, "recursive lock")
	if err != nil {
		return nil, err
	}
	return &RLock{mu: mutexAt(p), count: (*atomic.Uint32)(unsafe.Add(p, 12)),
		token: (*atomic.Uint64)(unsafe.Add(p, 16))}, nil
}

// held reports whether tok of this process holds l. Only the holder ever
// finds its own token there: the token word is cleared before the lock is
// let go, and set only by the process that holds it.
func (l *RLock) held(tok Token) bool {
	return l.mu.heldByMe() && l.token.Load() == uint64(tok)
}

// Lock locks l for tok: at once if tok already holds it (counting one
// more), otherwise waiting as [Mutex.Lock] does, with the same results:
// nil or an *[OwnerDeadError] with the lock held, or ctx's error without
// it. A count that would pass 2^32-1 fails, leaving the count as it was.
func (l *RLock) Lock(ctx context.Context, tok Token) error {
	if tok == 0 {
		return errors.New("lock shared recursive lock: zero token; take one with NewToken")
	}
	if l.held(tok) {
		c := l.count.Load()
		if c == math.MaxUint32 {
			return errors.New("lock shared recursive lock: count would overflow")
		}
		l.count.Store(c + 1)
		return nil
	}
	err := l.mu.Lock(ctx)
	var od *OwnerDeadError
	if err != nil && !errors.As(err, &od) {
		return fmt.Errorf("lock shared recursive lock: %w", errors.Unwrap(err))
	}
	l.token.Store(uint64(tok))
	l.count.Store(1)
	if od != nil {
		od.Lock = "recursive mutex"
		return od
	}
	return nil
}

// Unlock undoes one Lock by tok, and frees l when the count reaches zero.
// It fails with ErrNotOwner if tok of this process does not hold l.
func (l *RLock) Unlock(tok Token) error {
	if tok == 0 || !l.held(tok) {
		return fmt.Errorf("unlock shared recursive lock: %w", ErrNotOwner)
	}
	if c := l.count.Load(); c > 1 {
		l.count.Store(c - 1)
		return nil
	}
	l.count.Store(0)
	l.token.Store(0)
	l.mu.Unlock()
	return nil
}

// Count returns how many times l is held, 0 when free.
func (l *RLock) Count() int {
	if l.mu.word.Load() == 0 {
		return 0
	}
	return int(l.count.Load())
}

// Owner returns the pid of the process holding l, or 0 if it is free.
func (l *RLock) Owner() int { return l.mu.Owner() }
