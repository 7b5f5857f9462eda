package shm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const (
	// args: n; take NewToken until it is at least n (at most 2^16
	// times), lock the RLock at offRLock with it twice, print "locked",
	// block until killed.
	roleRLockHoldToken = "shm-test-rlock-hold-token"
)

// rlockHoldTokenMain is roleRLockHoldToken.
func rlockHoldTokenMain(ctx context.Context, args []string) error {
	n, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil {
		return err
	}
	b, err := childBoard()
	if err != nil {
		return err
	}
	l, err := RLockAt(b.r.Bytes(), offRLock)
	if err != nil {
		return err
	}
	tok := NewToken()
	for i := 0; uint64(tok) < n && i < 1<<16; i++ {
		tok = NewToken()
	}
	for range 2 {
		if err := l.Lock(ctx, tok); err != nil {
			return err
		}
	}
	fmt.Println("locked")
	for {
		time.Sleep(time.Hour)
	}
}

// TestRLockStaleTokenOfDeadOwner: a process died holding an RLock; a
// goroutine of this process takes the lock over (RLock.Lock has taken the
// Mutex and not yet written its own token), while another goroutine of this
// process calls Lock with a token whose value equals the dead owner's. The
// dead owner's token is still in the token word and the Mutex now names
// this process, so held() said yes and the second goroutine "re-entered" a
// lock the first one holds: two holders at once. Tokens were a per-process
// counter from 1, so equal values in two processes were the rule.
func TestRLockStaleTokenOfDeadOwner(t *testing.T) {
	b := newLockBoard(t)
	l, err := RLockAt(b.r.Bytes(), offRLock)
	if err != nil {
		t.Fatal(err)
	}
	// The child's token reaches past this process's next one, so that a
	// counter would hand this process the same value below.
	c := startHolder(t, b, roleRLockHoldToken, strconv.FormatUint(uint64(NewToken())+5, 10))
	c.Process().Signal(syscall.SIGKILL)
	c.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// The first goroutine's step: the Mutex taken over, its token not
	// yet written.
	if err := l.mu.Lock(ctx); !errors.Is(err, ErrOwnerDead) {
		t.Fatalf("taking over the dead holder's mutex = %v, want ErrOwnerDead", err)
	}
	for range 1000 {
		tok := NewToken()
		if l.held(tok) {
			err := l.Lock(ctx, tok)
			t.Fatalf("token %d of this process passes for the dead owner's: Lock = %v with count %d, while another goroutine holds the lock",
				tok, err, l.Count())
		}
	}
}
