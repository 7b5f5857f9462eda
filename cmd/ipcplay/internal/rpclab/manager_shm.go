package rpclab

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"ipcplay/procs"
	"ipcplay/shm"
)

// ManagerShmWorkerRole is the child role of the manager lab's shm mode.
// Register it with ManagerShmWorkerMain in main and TestMain.
const ManagerShmWorkerRole = "ipcplay-manager-shm-worker"

// MaxShmValues bounds Procs*Ops in shm mode: the list lives in the region.
const MaxShmValues = 32 << 20

// The shm mode's region: a futex mutex, two counters (the list's length and
// the dict's one entry, "total"), then the list's values.
const (
	shmOffMutex  = 0
	shmOffCounts = 16 // [0] list length, [1] total
	shmOffList   = 32
)

func shmSize(values int) int { return shmOffList + 8*values }

// shmState is the shared state as laid out in a region.
type shmState struct {
	mu     *shm.Mutex
	counts *shm.Int64Array
	list   *shm.Int64Array
}

func openShmState(mem []byte, values int) (*shmState, error) {
	mu, err := shm.MutexAt(mem, shmOffMutex)
	if err != nil {
		return nil, err
	}
	counts, err := shm.Int64sAt(mem, shmOffCounts, 2)
	if err != nil {
		return nil, err
	}
	list, err := shm.Int64sAt(mem, shmOffList, values)
	if err != nil {
		return nil, err
	}
	return &shmState{mu: mu, counts: counts, list: list}, nil
}

// appendValue is Shared.Append in the region: one critical section.
func (s *shmState) appendValue(ctx context.Context, v int64) error {
	if err := s.mu.Lock(ctx); err != nil {
		return err // an *shm.OwnerDeadError too: a worker died mid-append, the state is suspect
	}
	n := s.counts.Load(0)
	if n >= int64(s.list.Len()) {
		s.mu.Unlock()
		return fmt.Errorf("list full at %d values", n)
	}
	s.list.Store(int(n), v)
	s.counts.Store(0, n+1)
	s.mu.Unlock()
	return nil
}

// incrTotal is Shared.Incr(totalKey, 1) in the region: one critical section.
func (s *shmState) incrTotal(ctx context.Context) error {
	if err := s.mu.Lock(ctx); err != nil {
		return err
	}
	s.counts.Store(1, s.counts.Load(1)+1)
	s.mu.Unlock()
	return nil
}

func (s *shmState) snapshot() Snapshot {
	n := min(int(s.counts.Load(0)), s.list.Len())
	// Each append and each increment is one critical section that adds
	// one to one of the two counts.
	snap := Snapshot{List: make([]int64, n), Dict: map[string]int64{totalKey: s.counts.Load(1)},
		Calls: s.counts.Load(0) + s.counts.Load(1)}
	for i := range snap.List {
		snap.List[i] = s.list.Load(i)
	}
	return snap
}

// runShm runs the workers as processes mapping one region, with the list
// and the count under the region's futex mutex.
func runShm(ctx context.Context, cfg ManagerConfig) (ModeResult, error) {
	values := cfg.Procs * cfg.Ops
	if values > MaxShmValues {
		return ModeResult{}, fmt.Errorf("manager: shm mode holds at most %d values, not %d", MaxShmValues, values)
	}
	start := time.Now()
	size := shmSize(values)
	region, err := shm.New("ipcplay-manager", size)
	if err != nil {
		return ModeResult{}, fmt.Errorf("manager: %w", err)
	}
	defer region.Close()
	st, err := openShmState(region.Bytes(), values)
	if err != nil {
		return ModeResult{}, fmt.Errorf("manager: %w", err)
	}
	setup, elapsed, err := runWorkers(ctx, cfg, start, nil, func(ctx context.Context, i int) *procs.Cmd {
		w := procs.Command(ctx, ManagerShmWorkerRole, "-size", strconv.Itoa(size), "-values", strconv.Itoa(values),
			"-index", strconv.Itoa(i), "-ops", strconv.Itoa(cfg.Ops))
		w.ExtraFiles = make([]*os.File, procs.FDShm-2)
		w.ExtraFiles[procs.FDShm-3] = region.File()
		return w
	})
	if err != nil {
		return ModeResult{}, err
	}
	return result(ModeShm, st.snapshot(), cfg, setup, elapsed), nil
}

// ManagerShmWorkerMain is the entry point of ManagerShmWorkerRole: it maps
// the region it inherits at procs.FDShm, says "ready", waits for its stdin
// to close, does its operations under the region's mutex, and says "done".
func ManagerShmWorkerMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(ManagerShmWorkerRole, flag.ContinueOnError)
	size := fs.Int("size", 0, "the region's size")
	values := fs.Int("values", 0, "the list's capacity")
	index := fs.Int("index", 0, "this worker's index")
	ops := fs.Int("ops", 0, "operations to do")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ops < 1 || *index < 0 || *values < 1 || *size != shmSize(*values) {
		return fmt.Errorf("-size %d -values %d -index %d -ops %d: inconsistent", *size, *values, *index, *ops)
	}
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "region")
	if err != nil {
		return err
	}
	region, err := shm.Open(f, *size)
	if err != nil {
		f.Close()
		return fmt.Errorf("map region: %w", err)
	}
	defer region.Close()
	st, err := openShmState(region.Bytes(), *values)
	if err != nil {
		return err
	}
	if _, err := fmt.Println("ready"); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	for k := range *ops {
		if err := st.appendValue(ctx, value(*index, k, *ops)); err != nil {
			return err
		}
		if err := st.incrTotal(ctx); err != nil {
			return err
		}
	}
	_, err = fmt.Println("done")
	return err
}
