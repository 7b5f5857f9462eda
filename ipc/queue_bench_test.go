package ipc

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// Options of the throughput benchmarks: windows large enough that neither
// side waits for the other's answers while frames are on their way.
const (
	benchCapacity  = 1 << 16
	benchPutWindow = 1 << 15
	benchGetWindow = 1 << 14
	benchBatch     = 256 // values per PutBatch and GetBatch
)

// BenchmarkQueue64 moves b.N values of 64 bytes from producer to consumer
// processes through a Queue (impl=process; api=single: PutBytes and
// GetBytes, api=batch: PutBatch and GetBatch), against the bare socket at k
// frames per write(2) (impl=socket, RawFrames) and a buffered Go channel
// between two goroutines (impl=channel). The process figures time the
// consumers from their first value to their last, so the children's start
// is left out; give the process sub-benchmarks a fixed count
// (-benchtime=5000000x), since the start-up would mislead the choice of
// b.N. They also report the CPU time (user and system) of the producers,
// the hub (this process) and the consumers per value, the steadier figure
// on a shared machine.
func BenchmarkQueue64(b *testing.B) {
	for _, tc := range []struct {
		p, c  int
		batch int
		lanes bool
	}{{1, 1, 0, false}, {1, 1, benchBatch, false}, {2, 2, benchBatch, false}, {1, 1, benchBatch, true}, {2, 2, benchBatch, true}} {
		api := "api=single"
		if tc.batch > 0 {
			api = "api=batch"
		}
		if tc.lanes {
			api += "/lanes=on"
		}
		b.Run("impl=process/topo="+strconv.Itoa(tc.p)+"to"+strconv.Itoa(tc.c)+"/"+api, func(b *testing.B) {
			r := bytesRun{producers: tc.p, consumers: tc.c, n: max(1, b.N/tc.p), size: 64, batch: tc.batch,
				capacity: benchCapacity, putWindow: benchPutWindow, getWindow: benchGetWindow, lanes: tc.lanes}
			res := r.run(b.Context(), b)
			b.StopTimer()
			r.checkAll(b, res)
			reportRate(b, res.count, res.elapsed)
			n := float64(res.count)
			b.ReportMetric(float64(res.prodCPU.Nanoseconds())/n, "prod-cpu-ns/msg")
			b.ReportMetric(float64(res.hubCPU.Nanoseconds())/n, "hub-cpu-ns/msg")
			b.ReportMetric(float64(res.consCPU.Nanoseconds())/n, "cons-cpu-ns/msg")
		})
	}
	for _, k := range []int{1, 16, 256, 4096} {
		b.Run("impl=socket/batch="+strconv.Itoa(k), func(b *testing.B) {
			res, err := RawFrames(b.Context(), RawFramesConfig{Size: 64, PerWrite: k, Messages: b.N})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			reportRate(b, b.N, res.Elapsed)
		})
	}
	b.Run("impl=channel", func(b *testing.B) {
		reportRate(b, b.N, benchChannel(b.N))
	})
}

func reportRate(b *testing.B, n int, el time.Duration) {
	b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(n), "ns/msg")
	b.ReportMetric(0, "ns/op")
}

// benchChannel moves n values of 64 bytes between two goroutines over a
// channel of capacity 1024.
func benchChannel(n int) time.Duration {
	ch := make(chan [64]byte, 1024)
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Go(func() {
		var sum byte
		for v := range ch {
			sum += v[0]
		}
		_ = sum
	})
	var v [64]byte
	for i := range n {
		v[0] = byte(i)
		ch <- v
	}
	close(ch)
	wg.Wait()
	return time.Since(t0)
}

// BenchmarkQueueRoundTrip is one Put then one Get by a client of the owning
// process (two round trips to the hub over a socket pair), against a send
// and a receive on a buffered channel.
func BenchmarkQueueRoundTrip(b *testing.B) {
	for _, api := range []string{"typed", "bytes"} {
		b.Run("api="+api, func(b *testing.B) {
			ctx := b.Context()
			q, err := NewQueue(16)
			if err != nil {
				b.Fatal(err)
			}
			defer q.Shutdown()
			c, err := q.Client(QueueOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var it qItem
			v := make([]byte, 64)
			var got []byte
			b.ResetTimer()
			for i := range b.N {
				if api == "typed" {
					if err := c.Put(ctx, &qItem{S: uint32(i)}); err != nil {
						b.Fatal(err)
					}
					if err := c.Get(ctx, &it); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if err := c.PutBytes(ctx, v); err != nil {
					b.Fatal(err)
				}
				if got, err = c.GetBytes(ctx, got[:0]); err != nil {
					b.Fatal(err)
				}
			}
			el := b.Elapsed()
			b.StopTimer()
			raw := rawPingPong(b, b.N)
			b.ReportMetric(float64(el.Nanoseconds())/float64(b.N), "ns/put+get")
			// A Put and a Get are two round trips to the hub.
			b.ReportMetric(float64(el)/2/float64(max(raw, 1)), "x-raw-roundtrip")
		})
	}
}

// rawPingPong times n round trips of a small value over a bare Conn pair,
// echoed by a goroutine: the floor a queue round trip is measured against.
func rawPingPong(b *testing.B, n int) time.Duration {
	c, f, err := Pair(Stream)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	peer, err := FileConn(f)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer peer.Close()
		var m []byte
		for peer.Recv(&m) == nil {
			if peer.Send(&m) != nil {
				return
			}
		}
	})
	defer wg.Wait()
	defer c.CloseWrite()
	m := []byte{0x93, 1, 2, 3}
	t0 := time.Now()
	for range n {
		if err := c.Send(&m); err != nil {
			b.Fatal(err)
		}
		if err := c.Recv(&m); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(t0)
}
