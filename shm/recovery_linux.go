package shm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"ipcplay/procs"
)

// RoleRecoveryHolder is the child role [MeasureRecovery] starts: it takes
// a primitive and blocks until it is killed. A program that calls
// MeasureRecovery registers it once, before procs.Init:
//
//	procs.Register(shm.RoleRecoveryHolder, shm.RecoveryHolder)
const RoleRecoveryHolder = "ipcplay-shm-recovery-holder"

// The primitives MeasureRecovery measures, and what the holder does with
// each before it is killed.
const (
	RecoverMutex     = "mutex"     // locks a Mutex
	RecoverRLock     = "rlock"     // locks an RLock twice
	RecoverSemaphore = "semaphore" // takes the one permit of a robust Semaphore
	RecoverBarrier   = "barrier"   // joins a robust Barrier of two parties, never arrives
)

// RecoveryKinds returns the primitives MeasureRecovery knows.
func RecoveryKinds() []string {
	return []string{RecoverMutex, RecoverRLock, RecoverSemaphore, RecoverBarrier}
}

// The region a recovery run shares with its holder.
const (
	recoverySize   = 4096
	recoveryReady  = 0  // Event: the holder holds the primitive
	recoveryObject = 64 // the primitive
)

// Recovery is what MeasureRecovery measured: for each of N rounds, the
// time from the SIGKILL of the holder until a waiter in the measuring
// process went on, holding what the dead process held or with the error
// naming it.
type Recovery struct {
	Kind    string
	N       int
	Median  time.Duration
	Max     time.Duration
	Samples []time.Duration // in round order
	// Observed is what the waiter got in the last round: the error naming
	// the dead holder (its pid differs from round to round).
	Observed string
}

// recoveryViews lays out the primitive of kind in a recovery region; make
// initializes the ones that need it.
type recoveryViews struct {
	ready *Event
	mu    *Mutex
	rl    *RLock
	sem   *Semaphore
	bar   *Barrier
}

func recoveryAt(mem []byte, kind string, make bool) (*recoveryViews, error) {
	v := &recoveryViews{}
	var err error
	if v.ready, err = EventAt(mem, recoveryReady); err != nil {
		return nil, err
	}
	switch kind {
	case RecoverMutex:
		v.mu, err = MutexAt(mem, recoveryObject)
	case RecoverRLock:
		v.rl, err = RLockAt(mem, recoveryObject)
	case RecoverSemaphore:
		if make {
			v.sem, err = MakeRobustSemaphore(mem, recoveryObject, 1)
		} else {
			v.sem, err = RobustSemaphoreAt(mem, recoveryObject)
		}
	case RecoverBarrier:
		if make {
			v.bar, err = MakeRobustBarrier(mem, recoveryObject, 2)
		} else {
			v.bar, err = BarrierAt(mem, recoveryObject)
		}
	default:
		err = fmt.Errorf("unknown primitive %q, want one of %v", kind, RecoveryKinds())
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// RecoveryHolder is the entry point of RoleRecoveryHolder. Its one
// argument is the primitive; the region is inherited at procs.FDShm.
func RecoveryHolder(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("want one argument, the primitive")
	}
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "recovery region")
	if err != nil {
		return err
	}
	r, err := Open(f, recoverySize)
	if err != nil {
		f.Close()
		return err
	}
	v, err := recoveryAt(r.Bytes(), args[0], false)
	if err != nil {
		return err
	}
	switch {
	case v.mu != nil:
		err = v.mu.Lock(ctx)
	case v.rl != nil:
		tok := NewToken()
		if err = v.rl.Lock(ctx, tok); err == nil {
			err = v.rl.Lock(ctx, tok)
		}
	case v.sem != nil:
		err = v.sem.Wait(ctx)
	case v.bar != nil:
		err = v.bar.Join()
	}
	if err != nil {
		return fmt.Errorf("take %s: %w", args[0], err)
	}
	v.ready.Set()
	// Not <-ctx.Done(): a role's context may never end, and a process
	// whose goroutines all block on channels is killed by the runtime's
	// deadlock check. This one is killed by the measuring process.
	for {
		time.Sleep(time.Hour)
	}
}

// MeasureRecovery measures, n times, how long after a holder of the
// primitive kind (see [RecoveryKinds]) is killed with SIGKILL a waiter
// goes on: it starts a child of RoleRecoveryHolder (which must be
// registered) that takes the primitive, waits in this process for the
// primitive, kills the child between one and two wait slices later (so
// that the kill falls at a random point of the waiter's sleep), and times
// the waiter's return, which must be the error naming the child. Rounds
// run one after another, each with a fresh region.
func MeasureRecovery(ctx context.Context, kind string, n int) (Recovery, error) {
	res := Recovery{Kind: kind, N: n}
	if n < 1 {
		return res, fmt.Errorf("measure %s recovery: %d rounds", kind, n)
	}
	for i := range n {
		d, seen, err := recoverOnce(ctx, kind)
		if err != nil {
			return res, fmt.Errorf("measure %s recovery: round %d: %w", kind, i, err)
		}
		res.Samples = append(res.Samples, d)
		res.Observed = seen
	}
	sorted := slices.Sorted(slices.Values(res.Samples))
	res.Median = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		res.Median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	res.Max = sorted[len(sorted)-1]
	return res, nil
}

func recoverOnce(ctx context.Context, kind string) (took time.Duration, seen string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := New("ipcplay-recovery", recoverySize)
	if err != nil {
		return 0, "", err
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	v, err := recoveryAt(r.Bytes(), kind, true)
	if err != nil {
		return 0, "", err
	}
	c := procs.Command(ctx, RoleRecoveryHolder, kind)
	c.ExtraFiles = []*os.File{nil, r.File()}
	if err := c.Start(); err != nil {
		return 0, "", err
	}
	reaped := make(chan error, 1)
	killed := false
	defer func() {
		if !killed {
			c.Process().Kill()
			go func() { reaped <- c.Wait() }()
		}
		<-reaped
	}()
	if err := v.ready.Wait(ctx); err != nil {
		return 0, "", fmt.Errorf("holder did not take the %s: %w", kind, err)
	}
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		err := v.wait(ctx)
		done <- result{err, time.Now()}
	}()
	time.Sleep(waitSlice + rand.N(waitSlice))
	killedAt := time.Now()
	if err := c.Process().Signal(syscall.SIGKILL); err != nil {
		return 0, "", fmt.Errorf("kill holder: %w", err)
	}
	killed = true
	go func() { reaped <- c.Wait() }()
	res := <-done
	if err := v.named(res.err, c.Pid()); err != nil {
		return 0, "", err
	}
	return res.at.Sub(killedAt), res.err.Error(), nil
}

// wait waits for the primitive as one of the others would.
func (v *recoveryViews) wait(ctx context.Context) error {
	switch {
	case v.mu != nil:
		return v.mu.Lock(ctx)
	case v.rl != nil:
		return v.rl.Lock(ctx, NewToken())
	case v.sem != nil:
		return v.sem.Wait(ctx)
	default:
		_, err := v.bar.Wait(ctx)
		return err
	}
}

// named checks that err names the dead holder pid, and releases what the
// waiter took over.
func (v *recoveryViews) named(err error, pid int) error {
	var od *OwnerDeadError
	var pd *PartyDeadError
	switch {
	case errors.As(err, &od) && od.PID == pid:
		switch {
		case v.mu != nil:
			v.mu.Unlock()
		case v.sem != nil:
			return v.sem.Post()
		}
		return nil
	case errors.As(err, &pd) && pd.PID == pid:
		return nil
	}
	return fmt.Errorf("waiter got %v, want an error naming the killed holder %d", err, pid)
}

// String formats the figures as "kind: n=N median=… max=…".
func (r Recovery) String() string {
	return r.Kind + ": n=" + strconv.Itoa(r.N) + " median=" + r.Median.String() + " max=" + r.Max.String()
}
