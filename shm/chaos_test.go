package shm

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"ipcplay/procs"
)

// chaosKills is how many holders TestChaosKillLoop kills: 50 per kind, or
// 500 with IPCPLAY_LONG=1. IPCPLAY_SEED replays a run's kill schedule.
func chaosKills() int {
	if os.Getenv("IPCPLAY_LONG") == "1" {
		return 500
	}
	return 50
}

func chaosSeed(t *testing.T) uint64 {
	if s := os.Getenv("IPCPLAY_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("IPCPLAY_SEED=%q: %v", s, err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// TestChaosKillLoop: three children lock and unlock a Mutex (or an RLock,
// twice deep) as fast as they can, each checking on every round that no
// other process is inside; this test SIGKILLs a random one at a random
// moment, starts a replacement, and requires the others to go on (no
// deadlock: each round has a deadline) and nobody ever to find another
// process inside (no double ownership). A kill that lands while the
// victim holds the lock is recovered by the next taker (valRepaired).
func TestChaosKillLoop(t *testing.T) {
	for _, kind := range []string{"mutex", "rlock"} {
		t.Run("kind="+kind, func(t *testing.T) {
			seed := chaosSeed(t)
			t.Logf("IPCPLAY_SEED=%d", seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			b := newLockBoard(t)
			start := func() *procs.Cmd {
				c := procs.Command(ctx, roleChaos, kind)
				c.ExtraFiles = []*os.File{nil, b.r.File()}
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				return c
			}
			const n = 3
			var kids []*procs.Cmd
			t.Cleanup(func() {
				for _, c := range kids {
					c.Process().Kill()
					c.Wait()
				}
			})
			for range n {
				kids = append(kids, start())
			}
			kills := chaosKills()
			for k := range kills {
				// Let the lock change hands a while, then kill at a
				// random moment of its rounds.
				before := b.vals.Load(valTotal)
				rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
				ok := waitFor(rctx, func() bool { return b.vals.Load(valTotal) >= before+20 })
				rcancel()
				if !ok {
					t.Fatalf("kill %d: no progress in 20s after %d rounds (holder %d, owner %d)",
						k, before, b.vals.Load(valHolder), b.mu.Owner())
				}
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				i := rng.IntN(n)
				kids[i].Process().Signal(syscall.SIGKILL)
				kids[i].Wait()
				kids[i] = start()
			}
			before := b.vals.Load(valTotal)
			rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
			ok := waitFor(rctx, func() bool { return b.vals.Load(valTotal) >= before+20 })
			rcancel()
			if !ok {
				t.Fatal("no progress after the last kill")
			}
			b.ev.Set()
			for _, c := range kids {
				if err := c.Wait(); err != nil {
					t.Errorf("child: %v", err)
				}
			}
			kids = nil
			if v := b.vals.Load(valViolations); v != 0 {
				t.Errorf("%d times a process found another inside the critical section", v)
			}
			t.Logf("%d kills, %d rounds, %d takeovers from a dead holder", kills,
				b.vals.Load(valTotal), b.vals.Load(valRepaired))
		})
	}
}
