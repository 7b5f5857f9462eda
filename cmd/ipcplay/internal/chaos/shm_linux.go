package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"ipcplay/procs"
	"ipcplay/shm"
)

// HolderRole is the shm process of the chaos lab: it locks the shared
// Mutex, updates the words the lock guards, and unlocks, round after
// round, until the stop word is set. Args: its serial number.
const HolderRole = "ipcplay-chaos-holder"

// The shared region of the shm target: a Mutex, then int64 words.
const (
	shmSize    = 4096
	offMutex   = 0
	offWords   = 64
	nWords     = (shmSize - offWords) / 8
	wStop      = 0  // set to 1 to end the rounds
	wCounter   = 1  // guarded: read, then written plus one, inside the lock
	wTotal     = 2  // rounds completed, outside the lock: the progress
	wViolation = 3  // times a process found another alive inside
	wInside    = 4  // guarded: the pid inside, 0 when nobody is
	wTakeovers = 5  // locks taken over from a dead holder
	wReports   = 16 // wReports+i: the dead pid the i-th takeover named
	maxReports = 48
	wRounds    = 64 // wRounds+serial: rounds of that holder, inside the lock
	maxHolders = nWords - wRounds
)

type board struct {
	mu *shm.Mutex
	w  *shm.Int64Array
}

func boardAt(mem []byte) (board, error) {
	mu, err := shm.MutexAt(mem, offMutex)
	if err != nil {
		return board{}, err
	}
	w, err := shm.Int64sAt(mem, offWords, nWords)
	if err != nil {
		return board{}, err
	}
	return board{mu: mu, w: w}, nil
}

func holderMain(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("chaos holder: want serial, got %q", args)
	}
	serial, err := strconv.Atoi(args[0])
	if err != nil || serial < 0 || serial >= maxHolders {
		return fmt.Errorf("chaos holder: serial %q", args[0])
	}
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "chaos region")
	if err != nil {
		return err
	}
	r, err := shm.Open(f, shmSize)
	if err != nil {
		f.Close()
		return err
	}
	defer r.Close()
	b, err := boardAt(r.Bytes())
	if err != nil {
		return err
	}
	me := int64(os.Getpid())
	for b.w.Load(wStop) == 0 {
		err := b.mu.Lock(ctx)
		var od *shm.OwnerDeadError
		if errors.As(err, &od) {
			if k := b.w.Add(wTakeovers, 1) - 1; k < maxReports {
				b.w.Store(wReports+int(k), int64(od.PID))
			}
		} else if err != nil {
			return fmt.Errorf("chaos holder %d: %w", serial, err)
		}
		// Inside: nobody else may be, but the dead owner the takeover
		// named may have been killed here.
		if in := b.w.Load(wInside); in != 0 && (od == nil || in != int64(od.PID)) {
			b.w.Add(wViolation, 1)
		}
		b.w.Store(wInside, me)
		c := b.w.Load(wCounter)
		runtime.Gosched() // a kill often lands inside
		b.w.Store(wCounter, c+1)
		b.w.Store(wRounds+serial, b.w.Load(wRounds+serial)+1)
		b.w.Store(wInside, 0)
		b.mu.Unlock()
		b.w.Add(wTotal, 1)
	}
	return nil
}

// runShm runs it.Procs holders of one shm.Mutex and at each kill's point
// SIGKILLs one and starts another in its place. Afterwards: nobody was
// ever inside with a live process; every takeover named a process this
// iteration killed; and the guarded counter equals the rounds the holders
// counted, plus at most one round per takeover (a holder killed between
// its two writes).
func runShm(ctx context.Context, it Iteration) Outcome {
	o := newOutcome(it)
	r, err := shm.New("ipcplay-chaos", shmSize)
	if err != nil {
		o.ended(ctx, err)
		return o
	}
	defer func() {
		if err := r.Close(); err != nil {
			o.failf("close region: %w", err)
		}
	}()
	b, err := boardAt(r.Bytes())
	if err != nil {
		o.ended(ctx, err)
		return o
	}
	serial := 0
	var kids []*procs.Cmd
	defer func() {
		for _, c := range kids {
			if c.ProcessState() == nil {
				c.Process().Kill()
				c.Wait()
			}
		}
	}()
	start := func() (*procs.Cmd, error) {
		if serial >= maxHolders {
			return nil, fmt.Errorf("more than %d holders", maxHolders)
		}
		c := procs.Command(ctx, HolderRole, strconv.Itoa(serial))
		c.Index = serial
		serial++
		c.ExtraFiles = []*os.File{nil, r.File()}
		if err := c.Start(); err != nil {
			return nil, err
		}
		kids = append(kids, c)
		return c, nil
	}
	live := make([]*procs.Cmd, it.Procs)
	for i := range live {
		if live[i], err = start(); err != nil {
			o.ended(ctx, err)
			return o
		}
	}
	var killed []int
	var lastKill int64 // rounds when the last kill was made
	killLoop(ctx.Done(), it.Kills, func() int64 { return b.w.Load(wTotal) }, func(i int, k Kill) {
		c := live[k.Index%len(live)]
		if c == nil {
			return // its replacement failed to start
		}
		if c.Process().Signal(os.Kill) != nil {
			return
		}
		o.Fired[i] = c.Pid()
		lastKill = b.w.Load(wTotal)
		if err := c.Wait(); killedBySIGKILL(c) {
			o.died(i)
			killed = append(killed, c.Pid())
		} else {
			o.ended(ctx, fmt.Errorf("holder %d: %w", c.Index, err))
		}
		if live[k.Index%len(live)], err = start(); err != nil {
			o.ended(ctx, err)
		}
	})
	// The others go on after the last kill, or the iteration hangs; the
	// first to lock after it takes the lock over if the victim held it.
	// (Counted from the kill, not from its planned point: the rounds run
	// far faster than the killer looks at them.)
	if err := waitFor(ctx, func() bool { return b.w.Load(wTotal) >= lastKill+int64(it.Work) }); err != nil {
		o.ended(ctx, fmt.Errorf("shm: no progress after the kills (%d rounds, owner pid %d): %w", b.w.Load(wTotal), b.mu.Owner(), err))
	}
	b.w.Store(wStop, 1)
	for _, c := range live {
		if c == nil {
			continue
		}
		if err := c.Wait(); err != nil {
			o.ended(ctx, fmt.Errorf("holder %d: %w", c.Index, err))
		}
	}
	var sum int64
	for s := range serial {
		sum += b.w.Load(wRounds + s)
	}
	o.Results = sum
	o.Takeovers = int(b.w.Load(wTakeovers))
	for i := range min(o.Takeovers, maxReports) {
		pid := int(b.w.Load(wReports + i))
		if !slices.Contains(killed, pid) {
			o.failf("a takeover named pid %d, which this iteration did not kill", pid)
		}
	}
	if v := b.w.Load(wViolation); v != 0 {
		o.failf("%d times a process found another alive inside the lock", v)
	}
	extra := b.w.Load(wCounter) - sum
	if extra < 0 || extra > int64(o.Takeovers) {
		o.failf("the guarded counter is %d, the holders counted %d rounds, with %d takeovers", b.w.Load(wCounter), sum, o.Takeovers)
	}
	// A round a dead holder was inside: counted by the counter, not by
	// its holder; the takeover that followed named it.
	o.Lost = extra
	if extra > 0 {
		for i := range min(o.Takeovers, maxReports) {
			o.addLostBy(int(b.w.Load(wReports + i)))
		}
	}
	return o
}

// waitFor polls cond until it holds or ctx is done.
func waitFor(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
	return nil
}
