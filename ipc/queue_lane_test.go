package ipc

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"strconv"
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

// A consumer SIGKILLed while it reads a lane: it loses only the values
// handed to it (on the lane or relayed), which the hub counts as
// stranded; nothing else is lost or doubled, and Join returns.
func TestQueueLaneConsumerKilled(t *testing.T) { consumerKilled(t, true) }

// A producer killed right after a lane write, before it told the hub, and
// with half a frame written after it: the consumer gets every whole value
// written, in order, none twice and nothing torn, then io.EOF after Close;
// the hub counts the values it was not told of from the consumer's side
// (the consumer's TaskDones would be refused otherwise) and Join returns.
func TestQueueLaneProducerKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const n, dieAfter = 1_000_000, 20_000
	q := newTestQueue(t, 4096)
	q.EnableLanes()
	out := new(bytes.Buffer)
	cons := startQueueChild(t, ctx, q, out, bytesConsumerRole, "-window", "4096", "-batch", "100", "-records", "-taskdone",
		"-producers", "1", "-n", strconv.Itoa(n))
	prod := startQueueChild(t, ctx, q, nil, bytesProducerRole, "-id", "0", "-n", strconv.Itoa(n), "-size", "16",
		"-window", "4096", "-batch", "100", "-die-after", strconv.Itoa(dieAfter))
	if err := prod.Wait(); err == nil {
		t.Fatal("the producer that kills itself exited 0")
	}
	q.Close()
	if err := cons.Wait(); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, ctx, q, func(st QueueStats) bool { return st.Clients == 0 })
	b := out.Bytes()
	if len(b)%8 != 0 {
		t.Fatalf("consumer wrote %d bytes, not whole records", len(b))
	}
	got := len(b) / 8
	for i := range got {
		p, s := binary.LittleEndian.Uint32(b[8*i:]), binary.LittleEndian.Uint32(b[8*i+4:])
		if p != 0 || s != uint32(i) {
			t.Fatalf("value %d is %d/%d, want 0/%d", i, p, s, i)
		}
	}
	if got < dieAfter {
		t.Fatalf("consumer got %d values, the producer wrote %d on lanes before it died", got, dieAfter)
	}
	if st.LaneValues+st.Relayed != got || st.Unfinished != 0 || st.OpenLanes != 0 || st.Stranded != 0 {
		t.Fatalf("consumer got %d values; hub: %+v", got, st)
	}
	j := testClient(t, q)
	if err := j.Join(ctx); err != nil {
		t.Fatalf("join after the run: %v", err)
	}
	t.Logf("consumer got %d values, %d on lanes", got, st.LaneValues)
}
