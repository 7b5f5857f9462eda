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

// The layout of the region the lock tests share with their children.
const (
	lockRegionSize = 4096
	offMutex       = 0
	offSem         = 16
	offEvent       = 24
	offBarrier     = 32
	offVals        = 64 // int64 slots, see below
	numVals        = 16
)

// The int64 slots at offVals.
const (
	valInside     = 0 // processes inside the critical section
	valTotal      = 1 // the counter guarded by the mutex
	valViolations = 2 // times someone found another process inside
	valPassed     = 3 // processes past a semaphore or event
	valWaiting    = 4 // processes about to wait
	valArrived    = 5 // valArrived+r: parties that reached the barrier in round r
)

const (
	roleMutex   = "shm-test-mutex"   // args: rounds; lock, check and bump the counter, unlock
	roleHold    = "shm-test-hold"    // lock the mutex, print "locked", block
	roleSem     = "shm-test-sem"     // wait on the semaphore, count the pass
	roleEvent   = "shm-test-event"   // wait for the event, count the pass
	roleBarrier = "shm-test-barrier" // args: index rounds; meet the others at the barrier
	roleSpin    = "shm-test-spin"    // lock and unlock until the event is set, counting in valTotal
	roleWaiter  = "shm-test-waiter"  // lock within 10s; print "owner dead PID", "locked" or the error
)

type lockBoard struct {
	r    *Region
	mu   *Mutex
	sem  *Semaphore
	ev   *Event
	vals *Int64Array
}

func lockViews(r *Region) (*lockBoard, error) {
	b := &lockBoard{r: r}
	var err error
	if b.mu, err = r.Mutex(offMutex); err != nil {
		return nil, err
	}
	if b.sem, err = r.Semaphore(offSem); err != nil {
		return nil, err
	}
	if b.ev, err = r.Event(offEvent); err != nil {
		return nil, err
	}
	if b.vals, err = r.Int64s(offVals, numVals); err != nil {
		return nil, err
	}
	return b, nil
}

func childBoard() (*lockBoard, error) {
	r, err := childRegion(strconv.Itoa(lockRegionSize))
	if err != nil {
		return nil, err
	}
	return lockViews(r)
}

func registerLockRoles() {
	procs.Register(roleMutex, func(ctx context.Context, args []string) error {
		rounds, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		b, err := childBoard()
		if err != nil {
			return err
		}
		defer b.r.Close()
		for range rounds {
			if err := b.mu.Lock(ctx); err != nil {
				return err
			}
			if b.vals.Add(valInside, 1) != 1 {
				b.vals.Add(valViolations, 1)
			}
			// A read-modify-write split in two, as unsynchronized code
			// would do it: only mutual exclusion keeps it exact.
			t := b.vals.Load(valTotal)
			runtime.Gosched()
			b.vals.Store(valTotal, t+1)
			b.vals.Add(valInside, -1)
			b.mu.Unlock()
		}
		return nil
	})
	procs.Register(roleHold, func(ctx context.Context, args []string) error {
		b, err := childBoard()
		if err != nil {
			return err
		}
		if err := b.mu.Lock(ctx); err != nil {
			return err
		}
		b.vals.Store(valTotal, -1) // a half-done update the next owner must repair
		fmt.Println("locked")
		// Not <-ctx.Done(): a role's context may never end, and a
		// process with every goroutine blocked on channels is killed by
		// the runtime's deadlock check. The test kills this one.
		time.Sleep(time.Hour)
		return nil
	})
	procs.Register(roleSem, func(ctx context.Context, args []string) error {
		b, err := childBoard()
		if err != nil {
			return err
		}
		defer b.r.Close()
		b.vals.Add(valWaiting, 1)
		if err := b.sem.Wait(ctx); err != nil {
			return err
		}
		b.vals.Add(valPassed, 1)
		return nil
	})
	procs.Register(roleEvent, func(ctx context.Context, args []string) error {
		b, err := childBoard()
		if err != nil {
			return err
		}
		defer b.r.Close()
		b.vals.Add(valWaiting, 1)
		if err := b.ev.Wait(ctx); err != nil {
			return err
		}
		b.vals.Add(valPassed, 1)
		return nil
	})
	procs.Register(roleSpin, func(ctx context.Context, args []string) error {
		b, err := childBoard()
		if err != nil {
			return err
		}
		defer b.r.Close()
		b.vals.Add(valWaiting, 1)
		n := int64(0)
		for !b.ev.IsSet() {
			if err := b.mu.Lock(ctx); err != nil {
				return err
			}
			b.mu.Unlock()
			n++
		}
		b.vals.Add(valTotal, n)
		return nil
	})
	procs.Register(roleWaiter, func(ctx context.Context, args []string) error {
		b, err := childBoard()
		if err != nil {
			return err
		}
		defer b.r.Close()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		b.vals.Add(valWaiting, 1)
		err = b.mu.Lock(ctx)
		var od *OwnerDeadError
		switch {
		case errors.As(err, &od):
			fmt.Println("owner dead", od.PID)
		case err == nil:
			fmt.Println("locked")
		default:
			fmt.Println(err)
			return nil
		}
		b.mu.Unlock()
		return nil
	})
	procs.Register(roleBarrier, func(ctx context.Context, args []string) error {
		index, _ := strconv.Atoi(args[0])
		rounds, _ := strconv.Atoi(args[1])
		b, err := childBoard()
		if err != nil {
			return err
		}
		defer b.r.Close()
		bar, err := BarrierAt(b.r.Bytes(), offBarrier)
		if err != nil {
			return err
		}
		for round := range rounds {
			// Arrive in a different order every round, some late.
			time.Sleep(time.Duration((index+round)%bar.Parties()) * 15 * time.Millisecond)
			b.vals.Add(valArrived+round, 1)
			if _, err := bar.Wait(ctx); err != nil {
				return err
			}
			if got := b.vals.Load(valArrived + round); got != int64(bar.Parties()) {
				return fmt.Errorf("released from round %d with %d of %d parties arrived", round, got, bar.Parties())
			}
		}
		return nil
	})
}
