package chaos

import (
	"fmt"
	"math/rand/v2"
)

// The targets a chaos run can kill in.
const (
	Pool  = "pool"  // a worker of a procs/pool map
	Queue = "queue" // a producer or consumer of an ipc.Queue
	Shm   = "shm"   // a process looping on a shm.Mutex
	All   = "all"   // each iteration picks one of the three
)

// Targets are the choices of --target.
var Targets = []string{Pool, Queue, Shm, All}

// The size of each iteration's work, chosen so that every kill lands while
// there is still work to interrupt.
const (
	poolWorkersMax  = 3
	queueProducers  = 2
	queueConsumers  = 3
	shmHolders      = 3
	maxKillsPerIter = 4
)

// A Kill is one planned SIGKILL: in which iteration, whom, and when.
type Kill struct {
	Iteration int    // 0-based
	Target    string // Pool, Queue or Shm
	// Victim names the process: "worker" (the Index-th, modulo their
	// number, of the workers started before the map and not killed yet,
	// among those holding chunks if any do), "producer", "consumer" or
	// "holder" (the Index-th of its kind).
	Victim string
	Index  int
	// After is how far the iteration has gone when the kill is sent:
	// results delivered (pool), values consumed (queue), or lock rounds
	// (shm).
	After int
}

func (k Kill) String() string {
	return fmt.Sprintf("%s %s %d after %d", k.Target, k.Victim, k.Index, k.After)
}

// An Iteration is one run of a target with its kills.
type Iteration struct {
	N      int
	Target string
	// Procs is the number of workers (pool) or holders (shm); the queue
	// always runs queueProducers producers and queueConsumers consumers.
	Procs int
	// Work is the number of tasks (pool), values per producer (queue), or
	// lock rounds to see after the last kill (shm).
	Work int
	// Chunk is the pool's chunk size (0: the pool chooses), or the
	// queue's window (puts and gets in flight per endpoint).
	Chunk int
	// Capacity is the queue's capacity.
	Capacity int
	Kills    []Kill
}

// Plan returns the iterations of a run of kills kills on target (Pool,
// Queue, Shm or All), from seed alone: the same arguments give the same
// plan, whatever the machine does while it runs.
func Plan(seed uint64, kills int, target string) []Iteration {
	rng := rand.New(rand.NewPCG(seed, 0x63686173)) // "chas"
	var its []Iteration
	for left := kills; left > 0; {
		t := target
		if t == All {
			t = []string{Pool, Queue, Shm}[rng.IntN(3)]
		}
		it := Iteration{N: len(its), Target: t}
		n := min(left, 1+rng.IntN(maxKillsPerIter))
		switch t {
		case Pool:
			it.Procs = 2 + rng.IntN(poolWorkersMax-1)
			n = min(n, it.Procs) // one kill per worker started before the map
			it.Work = 1000 + rng.IntN(3000)
			it.Chunk = []int{0, 1, 4, 16}[rng.IntN(4)]
			it.Kills = afters(rng, n, it.Work/2, func(*Kill) string { return "worker" })
			for i := range it.Kills {
				it.Kills[i].Index = rng.IntN(8)
			}
		case Queue:
			// At most two kills: at most one consumer (so that the
			// values a dead consumer held are told apart), and each
			// producer at most once.
			n = min(n, 2)
			it.Chunk = []int{1, 16, 256}[rng.IntN(3)]
			work := 1000 + rng.IntN(4000)
			if it.Chunk == 1 {
				work /= 2 // a round trip per value
			}
			it.Capacity = []int{1, 16, 256}[rng.IntN(3)]
			// The kill points count values consumed, which lag the
			// values put by up to the buffer and the consumers'
			// windows: a producer has that many more to put, so
			// that it is still putting when its kill comes.
			it.Work = work + it.Capacity + queueConsumers*it.Chunk
			it.Kills = afters(rng, n, work/2, nil)
			victims := rng.Perm(queueProducers + 1) // the producers, then "a consumer"
			for i := range it.Kills {
				if v := victims[i]; v < queueProducers {
					it.Kills[i].Victim, it.Kills[i].Index = "producer", v
				} else {
					it.Kills[i].Victim, it.Kills[i].Index = "consumer", rng.IntN(queueConsumers)
				}
			}
		case Shm:
			it.Procs = shmHolders
			it.Work = 50
			it.Kills = afters(rng, n, 2000, func(*Kill) string { return "holder" })
			for i := range it.Kills {
				it.Kills[i].Index = rng.IntN(shmHolders)
			}
		}
		for i := range it.Kills {
			it.Kills[i].Iteration, it.Kills[i].Target = it.N, t
		}
		its = append(its, it)
		left -= n
	}
	return its
}

// afters returns n kills at increasing points in [0, upto), at least
// upto/(2n) apart so that each lands on a run that went on after the one
// before.
func afters(rng *rand.Rand, n, upto int, victim func(*Kill) string) []Kill {
	ks := make([]Kill, n)
	step := upto / n
	for i := range ks {
		ks[i].After = i*step + rng.IntN(max(step/2, 1))
		if victim != nil {
			ks[i].Victim = victim(&ks[i])
		}
	}
	return ks
}
