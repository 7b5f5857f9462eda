package chaos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// The queue roles of the chaos lab.
const (
	// ProducerRole puts values 0..n-1 of producer id, each 8 bytes
	// (id, then the value, little-endian), then flushes and closes.
	// Args: id, n, put window.
	ProducerRole = "ipcplay-chaos-producer"
	// ConsumerRole gets values until the queue is closed and empty and
	// writes each run of values it gets to its stdout as it gets it.
	// Args: get window.
	ConsumerRole = "ipcplay-chaos-consumer"
)

const valueSize = 8

func producerMain(ctx context.Context, args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("chaos producer: want id, n, window, got %q", args)
	}
	id, err1 := strconv.Atoi(args[0])
	n, err2 := strconv.Atoi(args[1])
	window, err3 := strconv.Atoi(args[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("chaos producer: %w", err)
	}
	qc, err := openQueue(ipc.QueueOptions{PutWindow: window})
	if err != nil {
		return err
	}
	v := make([]byte, valueSize)
	binary.LittleEndian.PutUint32(v, uint32(id))
	for s := range n {
		binary.LittleEndian.PutUint32(v[4:], uint32(s))
		if err := qc.PutBytes(ctx, v); err != nil {
			qc.Close()
			return fmt.Errorf("chaos producer %d: put %d: %w", id, s, err)
		}
	}
	if err := qc.Flush(ctx); err != nil {
		qc.Close()
		return fmt.Errorf("chaos producer %d: flush: %w", id, err)
	}
	return qc.Close()
}

func consumerMain(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("chaos consumer: want window, got %q", args)
	}
	window, err := strconv.Atoi(args[0])
	if err != nil {
		return fmt.Errorf("chaos consumer: %w", err)
	}
	qc, err := openQueue(ipc.QueueOptions{GetWindow: window})
	if err != nil {
		return err
	}
	dst := make([][]byte, 64)
	out := make([]byte, 0, len(dst)*valueSize)
	for {
		n, err := qc.GetBatch(ctx, dst)
		out = out[:0]
		for _, v := range dst[:n] {
			out = append(out, v...)
		}
		if _, werr := os.Stdout.Write(out); werr != nil {
			qc.Close()
			return fmt.Errorf("chaos consumer: write: %w", werr)
		}
		if errors.Is(err, io.EOF) {
			return qc.Close()
		}
		if err != nil {
			qc.Close()
			return fmt.Errorf("chaos consumer: get: %w", err)
		}
	}
}

func openQueue(opt ipc.QueueOptions) (*ipc.QueueClient, error) {
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "queue")
	if err != nil {
		return nil, err
	}
	return ipc.OpenQueue(f, opt)
}

// records collects what one consumer writes: whole values, in order; a
// value cut short by the consumer's death is dropped.
type records struct {
	total *atomic.Int64 // values of every consumer, for the kill points
	mu    sync.Mutex
	part  []byte
	vals  []uint64 // producer<<32 | value
}

func (r *records) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(b)
	if len(r.part) > 0 {
		k := min(valueSize-len(r.part), len(b))
		r.part = append(r.part, b[:k]...)
		b = b[k:]
		if len(r.part) == valueSize {
			r.add(r.part)
			r.part = r.part[:0]
		}
	}
	for ; len(b) >= valueSize; b = b[valueSize:] {
		r.add(b)
	}
	r.part = append(r.part, b...)
	return n, nil
}

func (r *records) add(v []byte) {
	p, s := binary.LittleEndian.Uint32(v), binary.LittleEndian.Uint32(v[4:])
	r.vals = append(r.vals, uint64(p)<<32|uint64(s))
	r.total.Add(1)
}

// runQueue runs queueProducers producers of it.Work values each and
// queueConsumers consumers over one ipc.Queue, and SIGKILLs the planned
// victims when the consumers together have got each kill's After values.
// Afterwards: no value twice; each consumer got each producer's values in
// order; and every value is accounted for, delivered to a consumer or
// fetched ahead by the dead consumer, as the hub's Stranded count says
// (exactly, when no producer died; at most, when one did, since a dead
// producer's last values may never have been put).
func runQueue(ctx context.Context, it Iteration) Outcome {
	o := newOutcome(it)
	q, err := ipc.NewQueue(it.Capacity)
	if err != nil {
		o.ended(ctx, err)
		return o
	}
	defer q.Shutdown()
	var total atomic.Int64
	start := func(role string, idx int, stdout io.Writer, args ...string) (*procs.Cmd, error) {
		f, err := q.Attach()
		if err != nil {
			return nil, err
		}
		c := procs.Command(ctx, role, args...)
		c.Index = idx
		c.SetFile(procs.FDControl, f)
		c.Stdout = stdout
		if err := c.Start(); err != nil {
			return nil, err
		}
		return c, nil
	}
	window := strconv.Itoa(it.Chunk)
	outs := make([]*records, queueConsumers)
	var cons, prods []*procs.Cmd
	defer func() { // a child left by a failed start
		for _, c := range append(cons, prods...) {
			if c.ProcessState() == nil {
				c.Process().Kill()
				c.Wait()
			}
		}
	}()
	for i := range queueConsumers {
		outs[i] = &records{total: &total}
		c, err := start(ConsumerRole, i, outs[i], window)
		if err != nil {
			o.ended(ctx, err)
			return o
		}
		cons = append(cons, c)
	}
	for i := range queueProducers {
		c, err := start(ProducerRole, i, nil, strconv.Itoa(i), strconv.Itoa(it.Work), window)
		if err != nil {
			o.ended(ctx, err)
			return o
		}
		prods = append(prods, c)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		killLoop(stop, it.Kills, total.Load, func(i int, k Kill) {
			c := prods[k.Index%len(prods)]
			if k.Victim == "consumer" {
				c = cons[k.Index%len(cons)]
			}
			if c.Process().Signal(os.Kill) == nil {
				o.Fired[i] = c.Pid()
			}
		})
	})
	// stopKiller ends the killer: the kills not made by then are missed.
	// Fired is read only after it.
	stopKiller := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopKiller()

	// A child ends well, or by a SIGKILL this iteration sent it.
	ours := func(c *procs.Cmd, err error) bool {
		return err == nil || killedBySIGKILL(c) && ourVictim(it, c)
	}
	prodKilled := make([]bool, queueProducers)
	for i, c := range prods {
		err := c.Wait()
		if !ours(c, err) {
			o.ended(ctx, fmt.Errorf("producer %d: %w", i, err))
		}
		prodKilled[i] = killedBySIGKILL(c)
	}
	q.Close()
	dead := -1 // the consumer killed
	for i, c := range cons {
		err := c.Wait()
		if !ours(c, err) {
			o.ended(ctx, fmt.Errorf("consumer %d: %w", i, err))
		}
		if killedBySIGKILL(c) {
			dead = i
		}
	}
	stopKiller()
	for _, c := range append(prods[:len(prods):len(prods)], cons...) {
		if i := slices.Index(o.Fired, c.Pid()); i >= 0 && killedBySIGKILL(c) {
			o.died(i)
		}
	}
	if o.Err != nil {
		return o
	}
	// The hub drops an endpoint when it reads EOF on its socket, which
	// may come a moment after the child was reaped.
	st := q.Stats()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for st.Clients > 0 {
		select {
		case <-ctx.Done():
			o.ended(ctx, fmt.Errorf("queue: %d endpoints still attached after every child ended: %w", st.Clients, context.Cause(ctx)))
			return o
		case <-tick.C:
		}
		st = q.Stats()
	}
	o.Stranded = st.Stranded
	deadPid := 0
	if dead >= 0 {
		deadPid = cons[dead].Pid()
	}
	o.checkQueue(it, outs, prodKilled, dead, deadPid, st)
	return o
}

// ourVictim reports whether c is a process the iteration planned to kill.
func ourVictim(it Iteration, c *procs.Cmd) bool {
	for _, k := range it.Kills {
		if (k.Victim == "producer" && c.Role == ProducerRole || k.Victim == "consumer" && c.Role == ConsumerRole) &&
			k.Index == c.Index {
			return true
		}
	}
	return false
}

// checkQueue checks what the consumers wrote (outs) against the hub's
// stats: dead is the index of the consumer killed (-1: none) and deadPid
// its pid.
func (o *Outcome) checkQueue(it Iteration, outs []*records, prodKilled []bool, dead, deadPid int, st ipc.QueueStats) {
	n := it.Work
	seen := make([][]bool, queueProducers)
	top := make([]int, queueProducers) // 1 + the highest value seen
	for p := range seen {
		seen[p] = make([]bool, n)
	}
	var fromDead int64
	for i, r := range outs {
		next := make([]int, queueProducers)
		for _, v := range r.vals {
			p, s := int(v>>32), int(uint32(v))
			if p >= queueProducers || s >= n {
				o.failf("consumer %d got value %d/%d, which no producer put", i, p, s)
				return
			}
			if seen[p][s] {
				o.failf("value %d/%d delivered twice", p, s)
				return
			}
			if s < next[p] {
				o.failf("consumer %d got producer %d's value %d after %d", i, p, s, next[p]-1)
				return
			}
			seen[p][s], next[p], top[p] = true, s+1, max(top[p], s+1)
			o.Results++
			if i == dead {
				fromDead++
			}
		}
	}
	var missing int64
	for p := range queueProducers {
		bound := n
		if prodKilled[p] {
			bound = top[p] // the rest may never have been put
		}
		for _, ok := range seen[p][:bound] {
			if !ok {
				missing++
			}
		}
	}
	held := int64(st.Stranded) - fromDead // fetched by the dead consumer, never written out
	anyProd := prodKilled[0] || prodKilled[1]
	switch {
	case st.Len != 0 || st.PendingPuts != 0:
		o.failf("queue not empty after the run: %d values buffered, %d puts waiting", st.Len, st.PendingPuts)
	case dead < 0 && (missing != 0 || st.Stranded != 0):
		o.failf("no consumer died, yet %d values are missing and %d stranded", missing, st.Stranded)
	case dead >= 0 && !anyProd && missing != held:
		o.failf("%d values missing, but the dead consumer held %d (stranded %d, %d written out)", missing, held, st.Stranded, fromDead)
	case dead >= 0 && anyProd && missing > held:
		o.failf("%d values missing, more than the dead consumer held (%d)", missing, held)
	}
	o.Lost = missing
	if missing > 0 && dead >= 0 {
		o.addLostBy(deadPid)
	}
}
