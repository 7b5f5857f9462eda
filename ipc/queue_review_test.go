package ipc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// A consumer closed while one of its Gets waits must not lose a value the
// hub hands it meanwhile: the value is returned by that Get, given back
// to the queue, or (only if the consumer could not give it back) counted
// as stranded. Before the fix the hub could hand a value to an endpoint
// that had already said goodbye: gone, not counted, and Join hung.
func TestQueueCloseDuringGetLosesNothing(t *testing.T) {
	for _, window := range []int{1, 8} {
		t.Run(fmt.Sprintf("getwindow=%d", window), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			q := newTestQueue(t, 4)
			p, drain := testClient(t, q), testClient(t, q)
			rounds := 300
			if window > 1 {
				rounds = 100
			}
			for i := range rounds {
				c, err := q.Client(QueueOptions{GetWindow: window})
				if err != nil {
					t.Fatal(err)
				}
				got := make(chan error, 1)
				go func() {
					_, err := c.GetBytes(ctx, nil)
					got <- err
				}()
				waitStats(t, ctx, q, func(st QueueStats) bool { return st.PendingGets > 0 })
				before := q.Stats().Stranded
				closed := make(chan error, 1)
				go func() { closed <- c.Close() }()
				if err := p.PutBytes(ctx, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				if err := <-closed; err != nil {
					t.Fatalf("round %d: close: %v", i, err)
				}
				gerr := <-got
				st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 2 })
				where := 0
				if gerr == nil {
					where++
				} else if !errors.Is(gerr, ErrQueueGone) {
					t.Fatalf("round %d: get: %v", i, gerr)
				}
				if st.Len == 1 {
					where++
					if _, err := drain.GetBytes(ctx, nil); err != nil {
						t.Fatal(err)
					}
				}
				if st.Stranded > before {
					where++
				}
				if where != 1 {
					t.Fatalf("round %d: value found %d times (get error %v, stats %+v, stranded before %d)", i, where, gerr, st, before)
				}
			}
		})
	}
}
