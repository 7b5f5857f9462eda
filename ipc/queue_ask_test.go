package ipc

import (
	"context"
	"testing"
	"time"
)

// The get window's top-up rule (waitGet, askAhead): a Get with nothing to
// take and more than half its window asked for does not ask again, except
// after dryAskDelay when it reads a lane. These tests look for values it
// could take that it never gets.

// laneCredited returns what the hub delegated, in all, to the open lane
// read by the consumer that has one (laneSetup makes exactly one).
func laneCredited(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, l := range q.lanes {
		return l.credited
	}
	return -1
}

// waitCredited waits until the hub has delegated more than was delegated
// before (credited) to the open lane: an ask of the consumer was handled
// while the buffer was empty.
func waitCredited(t *testing.T, ctx context.Context, q *Queue, more int) {
	t.Helper()
	for laneCredited(q) < more {
		select {
		case <-ctx.Done():
			t.Fatalf("the consumer's ask never reached the lane (credited %d, want %d): %+v", laneCredited(q), more, q.Stats())
		case <-time.After(time.Millisecond):
		}
	}
}

// getFrom runs c.GetBytes in a goroutine; the channel has its result.
type getResult struct {
	v   []byte
	err error
}

func getFrom(ctx context.Context, c *QueueClient) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		v, err := c.GetBytes(ctx, nil)
		ch <- getResult{v, err}
	}()
	return ch
}

// A lane consumer runs dry while its lane's producer is idle, and its
// re-ask (after dryAskDelay) finds the buffer empty, so the hub gives it
// to the idle lane too. A value another producer puts afterwards must
// still reach the waiting Get.
func TestQueueLaneDryGetGetsLaterValue(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, p, c := laneSetup(t, ctx)
	defer q.Shutdown()
	defer c.Close()
	defer p.Close()
	b := testClient(t, q)
	before := laneCredited(q)
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	got := getFrom(gctx, c)
	waitCredited(t, ctx, q, before+1)
	if err := b.PutBytes(ctx, []byte("from b")); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || string(r.v) != "from b" {
		t.Fatalf("get: %q, %v, want b's value (%+v)", r.v, r.err, q.Stats())
	}
}

// A lane consumer whose whole window is delegated to its lane (the top-up
// of its last take went there), and whose producer then goes idle: a value
// another producer put is in the buffer, and the Get must get it, though
// the window leaves nothing to ask for.
func TestQueueLaneFullWindowOnIdleLane(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, p, c := laneSetup(t, ctx)
	defer q.Shutdown()
	defer c.Close()
	defer p.Close()
	b := testClient(t, q)
	// c is idle: its getting side is ours to read.
	k := c.asked - c.taken - c.getWindow/2
	if k <= 0 {
		t.Fatalf("after the set-up %d asked, %d taken", c.asked, c.taken)
	}
	before := laneCredited(q)
	if _, err := p.PutBatch(ctx, laneVals(k)); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range k {
		if _, err := c.GetBytes(ctx, nil); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if c.asked-c.taken != c.getWindow {
		t.Fatalf("%d asked, %d taken: the last take did not top the window up", c.asked, c.taken)
	}
	waitCredited(t, ctx, q, before+c.getWindow/2)
	if err := b.PutBytes(ctx, []byte("from b")); err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	r := <-getFrom(gctx, c)
	if r.err != nil || string(r.v) != "from b" {
		t.Fatalf("get: %q, %v, want b's value (%+v)", r.v, r.err, q.Stats())
	}
}
