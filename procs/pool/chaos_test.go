package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chaosKills is how many workers TestChaosKills kills: 15 (about 15 s
// under -race on a loaded 2-core machine), or 1,000 with
// IPCPLAY_LONG=1. IPCPLAY_SEED replays a run's schedule (the same
// configurations, delays and victims; where a kill lands still depends on
// timing).
func chaosKills() int {
	if os.Getenv("IPCPLAY_LONG") == "1" {
		return 1000
	}
	return 15
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

// chaosConfig is one iteration of TestChaosKills.
type chaosConfig struct {
	workers, inFlight, retries int
	chunk, tasks, kills        int
	sleep                      string // per task, in the worker
	timeout                    time.Duration
	ordered                    bool
	delays                     []time.Duration // before each kill
	victims                    []int           // index into Busy() (or PIDs())
}

func (c chaosConfig) String() string {
	return fmt.Sprintf("workers=%d inflight=%d retries=%d chunk=%d tasks=%d kills=%d sleep=%s timeout=%v ordered=%v",
		c.workers, c.inFlight, c.retries, c.chunk, c.tasks, c.kills, c.sleep, c.timeout, c.ordered)
}

func newChaosConfig(rng *rand.Rand, left int) chaosConfig {
	c := chaosConfig{
		workers:  1 + rng.IntN(3),
		inFlight: 1 + rng.IntN(3),
		retries:  []int{2, 3, 100}[rng.IntN(3)],
		chunk:    []int{0, 1, 3, 16}[rng.IntN(4)],
		tasks:    200 + rng.IntN(3000),
		kills:    min(left, 1+rng.IntN(6)),
		sleep:    []string{"0s", "20us", "200us"}[rng.IntN(3)],
		timeout:  []time.Duration{0, 30 * time.Second}[rng.IntN(2)],
		ordered:  rng.IntN(2) == 0,
	}
	for range c.kills {
		c.delays = append(c.delays, time.Duration(rng.IntN(20000))*time.Microsecond)
		c.victims = append(c.victims, rng.IntN(8))
	}
	return c
}

// TestChaosKills maps with workers SIGKILLed at random moments, over random
// configurations: every task must come back exactly once, with its result
// or with a *TaskError naming it (ErrWorkerDeaths only: nothing here hangs
// or fails on its own), with no hang (each map has a deadline) and no
// child or goroutine left. The kills land on workers that said hello; one
// that dies before is covered by TestWorkersFailingAtStart.
func TestChaosKills(t *testing.T) {
	seed := chaosSeed(t)
	t.Logf("IPCPLAY_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	left := chaosKills()
	var maps, kills, results, lost int
	before := runtime.NumGoroutine()
	for left > 0 {
		c := newChaosConfig(rng, left)
		k, r, l := chaosMap(t, c)
		if t.Failed() {
			t.Fatalf("iteration %d (%v) failed; IPCPLAY_SEED=%d replays it", maps, c, seed)
		}
		maps++
		kills += k
		results += r
		lost += l
		left -= c.kills
	}
	goroutinesBack(t, before)
	t.Logf("%d maps, %d kills landed, %d results checked, %d tasks reported lost (ErrWorkerDeaths), 0 hangs",
		maps, kills, results, lost)
}

// chaosMap runs one configuration and returns the kills that landed, the
// results checked and the tasks reported lost.
func chaosMap(t *testing.T, c chaosConfig) (kills, results, lost int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p, err := New(ctx, Config{Role: roleSquare, Args: []string{"none", c.sleep}, Workers: c.workers, InFlight: c.inFlight, MaxRetries: c.retries})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Close()
		noChildren(t)
	}()
	if err := p.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	// The killer: after each delay, SIGKILL one of the workers holding
	// chunks, once every worker started so far has said hello (so that
	// no kill can count as a failed start).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var landed int
	wg.Go(func() {
		for i := range c.kills {
			select {
			case <-stop:
				return
			case <-time.After(c.delays[i]):
			}
			for len(p.Startups()) < c.workers+len(p.Events()) || len(p.Events()) < landed {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Microsecond):
				}
			}
			pids := p.Busy()
			if len(pids) == 0 {
				pids = p.PIDs()
			}
			if syscall.Kill(pids[c.victims[i]%len(pids)], syscall.SIGKILL) == nil {
				landed++
			}
		}
	})

	seen := make([]int, c.tasks)
	check := func(i, r int, err error) error {
		if i < 0 || i >= c.tasks {
			return fmt.Errorf("index %d out of range", i)
		}
		seen[i]++
		if err != nil {
			var te *TaskError
			if !errors.As(err, &te) || te.Index != i || !errors.Is(err, ErrWorkerDeaths) {
				return fmt.Errorf("task %d: unexpected error %v", i, err)
			}
			lost++
			return nil
		}
		if r != i*i {
			return fmt.Errorf("task %d: result %d, want %d", i, r, i*i)
		}
		results++
		return nil
	}
	o := MapOptions{ChunkSize: c.chunk, TaskTimeout: c.timeout}
	if c.ordered {
		var got []int
		got, err = MapWith[int, int](ctx, p, ints(c.tasks), o)
		var joined interface{ Unwrap() []error }
		failed := map[int]error{}
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				var te *TaskError
				if errors.As(e, &te) {
					failed[te.Index] = e
				}
			}
			err = nil
		}
		if err == nil {
			for i, r := range got {
				if err = check(i, r, failed[i]); err != nil {
					break
				}
			}
		}
	} else {
		o.Len = []int{0, c.tasks}[c.tasks%2]
		err = MapUnorderedWith(ctx, p, ints2seq(c.tasks), o, check)
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Errorf("%v: %v", c, err)
		return landed, results, lost
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("%v: task %d delivered %d times", c, i, n)
		}
	}
	if lost > 0 && c.retries == 100 {
		t.Errorf("%v: %d tasks lost with MaxRetries 100", c, lost)
	}
	return landed, results, lost
}
