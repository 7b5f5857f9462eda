package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"ipcplay/procs"
)

// RoleQueueRecovery is the child role [MeasureQueueRecovery] starts: a
// consumer that takes values and then blocks holding them, or a producer
// that puts values into a full queue and blocks with its puts waiting, until
// it is killed. A program that calls MeasureQueueRecovery registers it
// once, before procs.Init:
//
//	procs.Register(ipc.RoleQueueRecovery, ipc.QueueRecoveryChild)
const RoleQueueRecovery = "ipcplay-queue-recovery-child"

// The endpoints MeasureQueueRecovery kills.
const (
	RecoverConsumer = "consumer" // holds values fetched ahead, none marked done
	RecoverProducer = "producer" // has puts waiting for room in a full queue
)

// QueueRecoveryKinds returns the endpoints MeasureQueueRecovery kills.
func QueueRecoveryKinds() []string { return []string{RecoverConsumer, RecoverProducer} }

// The shape of a recovery round: the dead consumer holds recoveryHeld
// values; the dead producer has recoveryHeld puts waiting behind
// recoveryFull accepted values.
const (
	recoveryHeld = 16
	recoveryFull = 8
)

// QueueRecovery is what MeasureQueueRecovery measured over N kills.
type QueueRecovery struct {
	Kind string
	N    int
	// Median and Max are over Samples: for each kill, the time from the
	// SIGKILL until the others went on (see MeasureQueueRecovery).
	Median, Max time.Duration
	Samples     []time.Duration
	// Dropped are, for each kill, the time from the SIGKILL until the hub
	// dropped the dead endpoint.
	Dropped []time.Duration
	// Held is what each endpoint held when it was killed: values fetched
	// ahead (a consumer) or puts waiting for room (a producer).
	Held int
	// Lost is the values lost with the dead endpoints, over all rounds:
	// for a consumer, the values it held (counted as stranded by the
	// hub); for a producer, its puts the hub had not accepted (never
	// acknowledged to it).
	Lost int
	// Delivered is, for a producer, the values the hub had accepted from
	// it, and the consumer got, over all rounds.
	Delivered int
	// Observed is what the others got in the last round.
	Observed string
}

// QueueRecoveryChild is the entry point of RoleQueueRecovery. Its one
// argument is the kind; the queue is inherited at procs.FDControl.
func QueueRecoveryChild(ctx context.Context, args []string) error {
	if len(args) != 1 || !slices.Contains(QueueRecoveryKinds(), args[0]) {
		return fmt.Errorf("want one argument, one of %v", QueueRecoveryKinds())
	}
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "queue")
	if err != nil {
		return err
	}
	switch args[0] {
	case RecoverConsumer:
		qc, err := OpenQueue(f, QueueOptions{GetWindow: recoveryHeld})
		if err != nil {
			return err
		}
		if _, err := qc.GetBytes(ctx, nil); err != nil {
			return err
		}
	default:
		qc, err := OpenQueue(f, QueueOptions{PutWindow: recoveryHeld})
		if err != nil {
			return err
		}
		for i := range recoveryFull + recoveryHeld {
			if err := qc.PutBytes(ctx, []byte(strconv.Itoa(i))); err != nil {
				return err
			}
		}
	}
	// Not <-ctx.Done(): a role's context may never end, and a process
	// whose goroutines all block on channels is killed by the runtime's
	// deadlock check. This one is killed by the measuring process.
	for {
		time.Sleep(time.Hour)
	}
}

// MeasureQueueRecovery kills, n times, an endpoint of a Queue in a child
// process (of RoleQueueRecovery, which must be registered) at a moment it
// holds something, and times how long the others took to go on:
//
//   - consumer: the child has fetched 16 values ahead and marked none
//     done; this process waits in Join. The time runs until Join returns,
//     which it does once the hub has dropped the dead endpoint and counted
//     its values as stranded (lost) and done.
//   - producer: the child has 16 puts waiting for room in a full queue of
//     8. This process waits for the child, as the owner of producers does,
//     closes the queue when Wait returns (with the *procs.ChildError naming
//     the dead pid), and a consumer here takes what the hub had accepted.
//     The time runs until that consumer gets io.EOF. The 16 unacknowledged
//     puts are lost; the dead producer never counted them as sent.
//
// Each round has a fresh queue and child; rounds run one after another.
func MeasureQueueRecovery(ctx context.Context, kind string, n int) (QueueRecovery, error) {
	res := QueueRecovery{Kind: kind, N: n, Held: recoveryHeld}
	if n < 1 || !slices.Contains(QueueRecoveryKinds(), kind) {
		return res, fmt.Errorf("measure queue recovery: kind %q, %d rounds: want one of %v and at least 1", kind, n, QueueRecoveryKinds())
	}
	for i := range n {
		r, err := queueRecoverOnce(ctx, kind)
		if err != nil {
			return res, fmt.Errorf("measure queue %s recovery: round %d: %w", kind, i, err)
		}
		res.Samples = append(res.Samples, r.took)
		res.Dropped = append(res.Dropped, r.dropped)
		res.Lost += r.lost
		res.Delivered += r.delivered
		res.Observed = r.seen
	}
	sorted := slices.Sorted(slices.Values(res.Samples))
	res.Median = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		res.Median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	res.Max = sorted[len(sorted)-1]
	return res, nil
}

type queueRound struct {
	took, dropped   time.Duration
	lost, delivered int
	seen            string
}

func queueRecoverOnce(ctx context.Context, kind string) (res queueRound, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	capacity := recoveryFull
	if kind == RecoverConsumer {
		capacity = recoveryHeld
	}
	q, err := NewQueue(capacity)
	if err != nil {
		return res, err
	}
	defer q.Shutdown()
	own, err := q.Client(QueueOptions{})
	if err != nil {
		return res, err
	}
	defer own.Close()
	if kind == RecoverConsumer {
		for i := range recoveryHeld {
			if err := own.PutBytes(ctx, []byte(strconv.Itoa(i))); err != nil {
				return res, err
			}
		}
	}
	f, dropped, err := q.attachWatched()
	if err != nil {
		return res, err
	}
	c := procs.Command(ctx, RoleQueueRecovery, kind)
	c.SetFile(procs.FDControl, f)
	if err := c.Start(); err != nil {
		return res, err
	}
	// The owner waits for its child, and closes the queue when it ends,
	// as the owner of producers does (a dead consumer's queue needs no
	// closing, but it does no harm).
	var wg sync.WaitGroup
	var werr error
	reaped := make(chan struct{})
	wg.Go(func() {
		werr = c.Wait()
		close(reaped)
		q.Close()
	})
	killed := false
	defer func() {
		if !killed {
			c.Process().Kill()
		}
		cancel()
		wg.Wait()
	}()
	// The child holds what it should once the hub says so: every value
	// handed to the consumer (it is the only one asking), or the
	// producer's puts waiting behind a full buffer.
	holds := func(st QueueStats) bool { return st.Len == 0 }
	if kind == RecoverProducer {
		holds = func(st QueueStats) bool { return st.Len == recoveryFull && st.PendingPuts == recoveryHeld }
	}
	for !holds(q.Stats()) {
		select {
		case <-reaped:
			return res, fmt.Errorf("queue %s ended before it held anything: %v", kind, werr)
		case <-ctx.Done():
			return res, fmt.Errorf("queue %s never held its values: %+v: %w", kind, q.Stats(), context.Cause(ctx))
		case <-time.After(50 * time.Microsecond):
		}
	}
	type result struct {
		at  time.Time
		got int
		err error
	}
	done := make(chan result, 1)
	if kind == RecoverConsumer {
		wg.Go(func() {
			err := own.Join(ctx)
			done <- result{at: time.Now(), err: err}
		})
	} else {
		// The consumer takes what the hub accepted, until io.EOF.
		wg.Go(func() {
			got := 0
			var err error
			for {
				var v []byte
				if v, err = own.GetBytes(ctx, nil); err != nil {
					break
				}
				if string(v) != strconv.Itoa(got) {
					err = fmt.Errorf("value %q after %d values, want %d", v, got, got)
					break
				}
				got++
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			done <- result{at: time.Now(), got: got, err: err}
		})
	}
	killedAt := time.Now()
	if err := c.Process().Kill(); err != nil {
		return res, fmt.Errorf("kill queue %s: %w", kind, err)
	}
	killed = true
	r := <-done
	if r.err != nil {
		return res, fmt.Errorf("after the kill of queue %s %d: %w", kind, c.Pid(), r.err)
	}
	res.took = r.at.Sub(killedAt)
	select {
	case at := <-dropped:
		res.dropped = at.Sub(killedAt)
	case <-ctx.Done():
		return res, fmt.Errorf("hub never dropped queue %s %d: %w", kind, c.Pid(), context.Cause(ctx))
	}
	<-reaped
	var ce *procs.ChildError
	if !errors.As(werr, &ce) || ce.PID != c.Pid() {
		return res, fmt.Errorf("wait for queue %s %d: %v, want the error naming it", kind, c.Pid(), werr)
	}
	st := q.Stats()
	if kind == RecoverConsumer {
		if st.Stranded != recoveryHeld {
			return res, fmt.Errorf("dead consumer held %d values, hub counts %d stranded", recoveryHeld, st.Stranded)
		}
		res.lost = st.Stranded
		res.seen = fmt.Sprintf("Join returned nil, %d values stranded; the owner's Wait returned %q", st.Stranded, werr)
		return res, nil
	}
	if r.got < recoveryFull || r.got > recoveryFull+recoveryHeld {
		return res, fmt.Errorf("consumer got %d values, want %d to %d", r.got, recoveryFull, recoveryFull+recoveryHeld)
	}
	res.delivered, res.lost = r.got, recoveryFull+recoveryHeld-r.got
	res.seen = fmt.Sprintf("io.EOF after the owner's Wait returned %q and it closed the queue", werr)
	return res, nil
}

// attachWatched is Attach that also returns a channel that receives the
// time at which the hub dropped the endpoint.
func (q *Queue) attachWatched() (*os.File, <-chan time.Time, error) {
	q.mu.Lock()
	before := make(map[*hubConn]bool, len(q.conns))
	for hc := range q.conns {
		before[hc] = true
	}
	q.mu.Unlock()
	f, err := q.Attach()
	if err != nil {
		return nil, nil, err
	}
	q.mu.Lock()
	var mine *hubConn
	for hc := range q.conns {
		if !before[hc] {
			mine = hc
		}
	}
	q.mu.Unlock()
	at := make(chan time.Time, 1)
	if mine == nil { // dropped already
		at <- time.Now()
		return f, at, nil
	}
	q.wg.Go(func() {
		<-mine.done
		at <- time.Now()
	})
	return f, at, nil
}
