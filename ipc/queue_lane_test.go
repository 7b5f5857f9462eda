package ipc

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestQueueLanes moves values from 2 producer to 2 consumer processes with
// lanes on: each arrives exactly once, each consumer gets each producer's
// values in order (the consumers check), and some went on lanes.
// 1,000,000 values; 10,000,000 with IPCPLAY_LONG=1.
func TestQueueLanes(t *testing.T) {
	total := 1_000_000
	if os.Getenv("IPCPLAY_LONG") == "1" {
		total = 10_000_000
	}
	for _, tc := range []struct {
		name   string
		p, c   int
		window int
	}{{"1to1", 1, 1, 4096}, {"2to2", 2, 2, 2048}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
			defer cancel()
			r := bytesRun{producers: tc.p, consumers: tc.c, n: total / tc.p, size: 16,
				capacity: 4096, putWindow: tc.window, getWindow: tc.window, batch: 100, lanes: true}
			res := r.run(ctx, t)
			r.checkAll(t, res)
			st := res.stats
			t.Logf("%d values in %v (%.0f/s); %+v", res.count, res.elapsed, float64(res.count)/res.elapsed.Seconds(), st)
			if st.LaneValues == 0 || st.Lanes == 0 {
				t.Fatalf("no value went on a lane: %+v", st)
			}
			if st.LaneValues+st.Relayed != res.count {
				t.Fatalf("%d on lanes + %d relayed, want %d", st.LaneValues, st.Relayed, res.count)
			}
			if st.OpenLanes != 0 || st.Unfinished != res.count || st.Stranded != 0 {
				t.Fatalf("after the run: %+v, want no open lane, %d unfinished, none stranded", st, res.count)
			}
		})
	}
}
