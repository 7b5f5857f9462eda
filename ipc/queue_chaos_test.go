package ipc

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipcplay/procs"
)

// TestQueueChaos runs producers and consumers in processes and SIGKILLs
// some of them at random moments, from a seed it prints (IPCPLAY_SEED
// replays one). After each round: no value twice, each consumer gets each
// producer's values in order, every value accepted reaches a consumer that
// lived or is counted as stranded (exactly, when no producer was killed),
// and the queue ends empty with nothing unfinished. IPCPLAY_LONG=1 runs
// 30 rounds of larger runs instead of 3.
func TestQueueChaos(t *testing.T) {
	seed := chaosSeed(t)
	rounds, n := 3, 20_000
	if raceEnabled {
		n = 5_000
	}
	if os.Getenv("IPCPLAY_LONG") == "1" {
		rounds, n = 30, 100_000
	}
	kills := 0
	for r := range rounds {
		kills += queueChaosRound(t, rand.New(rand.NewPCG(seed, uint64(r))), r, n, false)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds, %d kills", rounds, kills)
}

func queueChaosRound(t *testing.T, rng *rand.Rand, round, n int, lanes bool) int {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	producers, consumers := 2, 3
	pick := func(xs ...int) string { return strconv.Itoa(xs[rng.IntN(len(xs))]) }
	capacities := []int{1, 16, 256}
	pwin, cwin := []int{1, 16, 128}, []int{1, 64, 512}
	if lanes {
		// A lane needs a producer with 256 puts in flight and a consumer
		// with a window.
		consumers, capacities = 2, []int{16, 256, 4096}
		pwin, cwin = []int{512, 4096}, []int{2, 64, 4096}
	}
	q, err := NewQueue(capacities[rng.IntN(len(capacities))])
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown()
	if lanes {
		q.EnableLanes()
	}
	socks := openSockets()
	outs := make([]*watchWriter, consumers)
	cons := make([]*procs.Cmd, consumers)
	for i := range consumers {
		outs[i] = newWatchWriter(8 * 1024 * (1 + rng.IntN(6)))
		cons[i] = startQueueChild(t, ctx, q, outs[i], bytesConsumerRole, "-window", pick(cwin...), "-records", "-taskdone",
			"-producers", strconv.Itoa(producers), "-n", strconv.Itoa(n))
	}
	prods := make([]*procs.Cmd, producers)
	for i := range producers {
		prods[i] = startQueueChild(t, ctx, q, nil, bytesProducerRole,
			"-id", strconv.Itoa(i), "-n", strconv.Itoa(n), "-size", "16", "-window", pick(pwin...))
	}
	// Consumer 0 always lives; each other is killed once it has reported
	// some values, with probability 1/2; producer 1 is killed after a
	// random delay, with probability 1/2.
	killed := make(chan int, consumers+producers)
	stop := make(chan struct{}) // closed once every child has ended
	var plan []func()
	for i := 1; i < consumers; i++ {
		if rng.IntN(2) == 0 {
			plan = append(plan, func() {
				select {
				case <-outs[i].reached:
					if cons[i].Process().Kill() == nil {
						killed <- i
					}
				case <-stop:
				}
			})
		}
	}
	if rng.IntN(2) == 0 {
		d := time.Duration(rng.IntN(40)) * time.Millisecond
		plan = append(plan, func() {
			select {
			case <-time.After(d):
				prods[1].Process().Kill()
			case <-stop:
			}
		})
	}
	done := make(chan struct{})
	for _, f := range plan {
		go func() { f(); done <- struct{}{} }()
	}
	prodKilled := make([]bool, producers)
	for i, p := range prods {
		if err := p.Wait(); err != nil {
			if !wasKilled(p) {
				t.Fatalf("round %d: producer %d: %v", round, i, err)
			}
			prodKilled[i] = true
		}
	}
	q.Close()
	consKilled := make([]bool, consumers)
	for i, c := range cons {
		if err := c.Wait(); err != nil {
			if !wasKilled(c) {
				t.Fatalf("round %d: consumer %d: %v", round, i, err)
			}
			consKilled[i] = true
		}
	}
	close(stop)
	for range plan {
		<-done
	}
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 0 })
	seen := make([][]bool, producers)
	for p := range seen {
		seen[p] = make([]bool, n)
	}
	top := make([]int, producers) // 1 + the highest value of each producer seen
	livedN := make([]int, producers)
	died := 0
	for i, w := range outs {
		b := w.bytes()
		if len(b)%8 != 0 && !consKilled[i] {
			t.Fatalf("round %d: consumer %d wrote %d bytes", round, i, len(b))
		}
		b = b[:len(b)/8*8]
		next := make([]uint32, producers)
		for ; len(b) > 0; b = b[8:] {
			p, s := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
			if seen[p][s] {
				t.Fatalf("round %d: value %d/%d delivered twice", round, p, s)
			}
			if s < next[p] {
				t.Fatalf("round %d: consumer %d got producer %d's value %d after %d", round, i, p, s, next[p]-1)
			}
			seen[p][s], next[p] = true, s+1
			top[p] = max(top[p], int(s)+1)
			if consKilled[i] {
				died++
			} else {
				livedN[p]++
			}
		}
	}
	lost := 0
	for p := range producers {
		want := n
		if prodKilled[p] {
			want = top[p]
		}
		lost += want - livedN[p]
	}
	anyProd := prodKilled[0] || prodKilled[1]
	switch {
	case anyProd && (lost > st.Stranded || died > st.Stranded):
		t.Fatalf("round %d: %d values lost that were not counted (stranded %d, killed consumers reported %d)", round, lost-st.Stranded, st.Stranded, died)
	case !anyProd && (lost != st.Stranded || died > st.Stranded):
		t.Fatalf("round %d: %d values missing, %d stranded, killed consumers reported %d", round, lost, st.Stranded, died)
	}
	if st.Len != 0 || st.Unfinished != 0 || st.OpenLanes != 0 {
		t.Fatalf("round %d: after the run %+v", round, st)
	}
	if j, err := q.Client(QueueOptions{}); err != nil {
		t.Fatal(err)
	} else if err := j.Join(ctx); err != nil {
		t.Fatalf("round %d: join: %v (%+v)", round, err, q.Stats())
	} else {
		j.Close()
	}
	waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 0 })
	if got := openSockets(); got > socks {
		t.Fatalf("round %d: %d sockets open in the hub's process after the run, %d before: %v", round, got, socks, fdNames())
	}
	k := 0
	for _, x := range append(prodKilled, consKilled...) {
		if x {
			k++
		}
	}
	t.Logf("round %d: capacity %d, killed %d (producers %v, consumers %v), stranded %d, lost %d, lanes %d (%d values)",
		round, q.Capacity(), k, prodKilled, consKilled, st.Stranded, lost, st.Lanes, st.LaneValues)
	return k
}

// TestQueueLaneChaos is TestQueueChaos with lanes on: 2 producers with
// windows that ask for lanes and 2 consumers with windows, one consumer
// and one producer SIGKILLed at random moments. IPCPLAY_LONG=1 runs 100
// rounds instead of 3.
func TestQueueLaneChaos(t *testing.T) {
	seed := chaosSeed(t)
	rounds, n := 3, 20_000
	if raceEnabled {
		n = 5_000
	}
	if os.Getenv("IPCPLAY_LONG") == "1" {
		rounds, n = 100, 50_000
	}
	kills := 0
	from := 0 // IPCPLAY_ROUND=r replays round r of the seed alone
	if s := os.Getenv("IPCPLAY_ROUND"); s != "" {
		from, _ = strconv.Atoi(s)
		rounds = from + 1
	}
	for r := from; r < rounds; r++ {
		kills += queueChaosRound(t, rand.New(rand.NewPCG(seed, uint64(r))), r, n, true)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds, %d kills", rounds, kills)
}

// fdNames lists what this process's open files are.
func fdNames() []string {
	es, _ := os.ReadDir("/proc/self/fd")
	var names []string
	for _, e := range es {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		names = append(names, e.Name()+"="+l)
	}
	return names
}

// openSockets counts this process's open sockets.
func openSockets() int {
	n := 0
	for _, s := range fdNames() {
		if strings.Contains(s, "=socket:") {
			n++
		}
	}
	return n
}

// wasKilled reports whether c ended by SIGKILL.
func wasKilled(c *procs.Cmd) bool {
	ps := c.ProcessState()
	if ps == nil {
		return false
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// chaosSeed is the seed of a chaos test's kill schedule: IPCPLAY_SEED, or
// the clock. It logs it, so that a failed run can be replayed.
func chaosSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("IPCPLAY_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (IPCPLAY_SEED=%d replays the kill schedule)", seed, seed)
	return seed
}
