package shm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"ipcplay/procs"
)

// The roles of the RLock, Cond, robust primitive and chaos tests. Offsets
// in the lock board's region (see lockroles_test.go) past the slots.
const (
	offRLock    = 256 // RLockSize
	offCondMu   = 320 // Mutex guarding the bounded buffer
	offNotEmpty = 336 // Cond
	offNotFull  = 344 // Cond
	offBuf      = 384 // int64 slots: head, tail, then bufCap items
	bufCap      = 8
	offChaosMu  = 1024 // Mutex of the chaos loop
	offRobust   = 2048 // a robust Semaphore or Barrier
)

// The int64 slots of the chaos loop and the cond tests, at offVals.
const (
	valHolder   = 6 // pid of the process inside the critical section
	valConsumed = 7 // items taken from the bounded buffer
	valSum      = 8 // sum of the items taken
	valRepaired = 9 // owner-dead takeovers seen
)

const (
	roleRLock     = "shm-test-rlock"       // args: rounds; nested lock, check and bump the counter
	roleConsumer  = "shm-test-consumer"    // take items from the bounded buffer until a -1
	roleCondWait  = "shm-test-condwait"    // lock, wait on notEmpty once (10s), print "woken" or the error
	roleChaos     = "shm-test-chaos"       // args: mutex|rlock; lock, check, unlock until the event is set
	roleBarOnce   = "shm-test-barrier1"    // args: off; wait once on the robust barrier there; print the outcome
	roleCondHands = "shm-test-condhandoff" // the child half of BenchmarkCondHandoff
)

type condBoard struct {
	*lockBoard
	cmu               *Mutex
	notEmpty, notFull *Cond
	buf               *Int64Array // [0] head, [1] tail, [2:] items
}

func condViews(b *lockBoard) (*condBoard, error) {
	c := &condBoard{lockBoard: b}
	var err error
	mem := b.r.Bytes()
	if c.cmu, err = MutexAt(mem, offCondMu); err != nil {
		return nil, err
	}
	if c.notEmpty, err = CondAt(mem, offNotEmpty, c.cmu); err != nil {
		return nil, err
	}
	if c.notFull, err = CondAt(mem, offNotFull, c.cmu); err != nil {
		return nil, err
	}
	if c.buf, err = Int64sAt(mem, offBuf, 2+bufCap); err != nil {
		return nil, err
	}
	return c, nil
}

// put appends v to the bounded buffer, waiting while it is full: the
// notebook's producer.
func (c *condBoard) put(ctx context.Context, v int64) error {
	if err := c.cmu.Lock(ctx); err != nil {
		return err
	}
	defer c.cmu.Unlock()
	for c.buf.Load(1)-c.buf.Load(0) == bufCap {
		if err := c.notFull.Wait(ctx); err != nil {
			return err
		}
	}
	t := c.buf.Load(1)
	c.buf.Store(2+int(t%bufCap), v)
	c.buf.Store(1, t+1)
	c.notEmpty.Signal()
	return nil
}

// take removes the oldest item, waiting while the buffer is empty.
func (c *condBoard) take(ctx context.Context) (int64, error) {
	if err := c.cmu.Lock(ctx); err != nil {
		return 0, err
	}
	defer c.cmu.Unlock()
	for c.buf.Load(1) == c.buf.Load(0) {
		if err := c.notEmpty.Wait(ctx); err != nil {
			return 0, err
		}
	}
	h := c.buf.Load(0)
	v := c.buf.Load(2 + int(h%bufCap))
	c.buf.Store(0, h+1)
	c.notFull.Signal()
	return v, nil
}

func childCond() (*condBoard, error) {
	b, err := childBoard()
	if err != nil {
		return nil, err
	}
	return condViews(b)
}

func registerFamilyRoles() {
	procs.Register(RoleRecoveryHolder, RecoveryHolder)
	procs.Register(roleRLock, func(ctx context.Context, args []string) error {
		rounds, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		b, err := childBoard()
		if err != nil {
			return err
		}
		defer b.r.Close()
		l, err := RLockAt(b.r.Bytes(), offRLock)
		if err != nil {
			return err
		}
		tok := NewToken()
		for range rounds {
			if err := l.Lock(ctx, tok); err != nil {
				return err
			}
			if err := l.Lock(ctx, tok); err != nil { // again, as a nested call would
				return err
			}
			if b.vals.Add(valInside, 1) != 1 {
				b.vals.Add(valViolations, 1)
			}
			t := b.vals.Load(valTotal)
			runtime.Gosched()
			b.vals.Store(valTotal, t+1)
			b.vals.Add(valInside, -1)
			if err := l.Unlock(tok); err != nil {
				return err
			}
			if l.Count() != 1 || l.Owner() == 0 {
				b.vals.Add(valViolations, 1)
			}
			if err := l.Unlock(tok); err != nil {
				return err
			}
		}
		return nil
	})
	procs.Register(roleConsumer, func(ctx context.Context, args []string) error {
		c, err := childCond()
		if err != nil {
			return err
		}
		defer c.r.Close()
		for {
			v, err := c.take(ctx)
			if err != nil {
				return err
			}
			if v < 0 {
				return nil
			}
			c.vals.Add(valConsumed, 1)
			c.vals.Add(valSum, v)
		}
	})
	procs.Register(roleCondWait, func(ctx context.Context, args []string) error {
		c, err := childCond()
		if err != nil {
			return err
		}
		defer c.r.Close()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.cmu.Lock(ctx); err != nil {
			return err
		}
		c.vals.Add(valWaiting, 1)
		err = c.notEmpty.Wait(ctx)
		c.cmu.Unlock()
		if err != nil {
			fmt.Println(err)
			return nil
		}
		fmt.Println("woken")
		return nil
	})
	procs.Register(roleChaos, chaosMain)
	procs.Register(roleBarOnce, func(ctx context.Context, args []string) error {
		b, err := childBoard()
		if err != nil {
			return err
		}
		defer b.r.Close()
		off, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		bar, err := BarrierAt(b.r.Bytes(), off)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = bar.Wait(ctx)
		var pd *PartyDeadError
		switch {
		case errors.As(err, &pd):
			fmt.Println("party dead", pd.PID)
		case err == nil:
			fmt.Println("passed")
		default:
			fmt.Println(err)
		}
		return nil
	})
	procs.Register(roleCondHands, condHandoffChild)
	procs.Register(roleBcast, broadcastChild)
}

// chaosMain locks and unlocks the chaos mutex (or an RLock, twice deep)
// until the event is set, checking on every round that nobody else is
// inside: the process inside writes its pid into valHolder and finds it
// there on the way out. A takeover from a dead owner repairs the slots.
func chaosMain(ctx context.Context, args []string) error {
	b, err := childBoard()
	if err != nil {
		return err
	}
	defer b.r.Close()
	mu, err := MutexAt(b.r.Bytes(), offChaosMu)
	if err != nil {
		return err
	}
	rl, err := RLockAt(b.r.Bytes(), offRLock)
	if err != nil {
		return err
	}
	tok := NewToken()
	lock := func() error { return mu.Lock(ctx) }
	unlock := func() error { mu.Unlock(); return nil }
	if args[0] == "rlock" {
		lock = func() error {
			err := rl.Lock(ctx, tok)
			if err != nil && !errors.Is(err, ErrOwnerDead) {
				return err
			}
			if err2 := rl.Lock(ctx, tok); err2 != nil {
				return err2
			}
			return err
		}
		unlock = func() error {
			if err := rl.Unlock(tok); err != nil {
				return err
			}
			return rl.Unlock(tok)
		}
	}
	pid := int64(myIdent().pid())
	b.vals.Add(valWaiting, 1)
	for !b.ev.IsSet() {
		err := lock()
		if errors.Is(err, ErrOwnerDead) {
			// The dead owner may have been inside: repair.
			b.vals.Store(valInside, 0)
			b.vals.Store(valHolder, 0)
			b.vals.Add(valRepaired, 1)
		} else if err != nil {
			return err
		}
		if b.vals.Add(valInside, 1) != 1 {
			b.vals.Add(valViolations, 1)
		}
		b.vals.Store(valHolder, pid)
		runtime.Gosched()
		if b.vals.Load(valHolder) != pid {
			b.vals.Add(valViolations, 1)
		}
		b.vals.Add(valTotal, 1)
		b.vals.Add(valInside, -1)
		if err := unlock(); err != nil {
			return err
		}
	}
	return nil
}
