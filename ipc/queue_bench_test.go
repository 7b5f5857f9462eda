package ipc

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"ipcplay/procs"
)

// benchQueueProcs moves b.N values from one producer child to one consumer
// child through a Queue, with put and get windows of w (puts batched when
// w > 1).
func benchQueueProcs(b *testing.B, w int) {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	q, err := NewQueue(1024)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Shutdown()
	start := func(role string, args ...string) *procs.Cmd {
		f, err := q.Attach()
		if err != nil {
			b.Fatal(err)
		}
		cmd := procs.Command(ctx, role, args...)
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		err = cmd.Start()
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		return cmd
	}
	b.ResetTimer()
	t0 := time.Now()
	cons := start(queueConsumerRole, "-window", strconv.Itoa(w))
	prod := start(queueProducerRole, "-n", strconv.Itoa(b.N), "-window", strconv.Itoa(w), "-batch="+strconv.FormatBool(w > 1))
	if err := prod.Wait(); err != nil {
		b.Fatal(err)
	}
	q.Close()
	if err := cons.Wait(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(t0)
	b.StopTimer()
	ch := benchChannel(b.N)
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(b.N), "ns/msg")
	b.ReportMetric(float64(ch.Nanoseconds())/float64(b.N), "ns/msg-channel")
	b.ReportMetric(float64(el)/float64(ch), "x-channel")
}

// benchChannel moves n values between two goroutines over a channel of
// the same capacity, for comparison.
func benchChannel(n int) time.Duration {
	ch := make(chan qItem, 1024)
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Go(func() {
		for range ch {
		}
	})
	for i := range n {
		ch <- qItem{S: uint32(i)}
	}
	close(ch)
	wg.Wait()
	return time.Since(t0)
}

// BenchmarkQueueProcs includes starting the two children: run it with a
// large -benchtime (e.g. 200000x) so that their start is amortized.
func BenchmarkQueueProcs(b *testing.B) {
	for _, w := range []int{1, 64} {
		b.Run("window="+strconv.Itoa(w), func(b *testing.B) { benchQueueProcs(b, w) })
	}
}

// BenchmarkQueueRoundTrip is one Put then one Get by a client of the owning
// process (two round trips to the hub over a socket pair), against a send
// and a receive on a buffered channel.
func BenchmarkQueueRoundTrip(b *testing.B) {
	ctx := b.Context()
	q, err := NewQueue(16)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Shutdown()
	c, err := q.Client()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var it qItem
	b.ResetTimer()
	for i := range b.N {
		if err := c.Put(ctx, &qItem{S: uint32(i)}); err != nil {
			b.Fatal(err)
		}
		if err := c.Get(ctx, &it); err != nil {
			b.Fatal(err)
		}
	}
	el := b.Elapsed()
	b.StopTimer()
	ch := make(chan qItem, 16)
	t0 := time.Now()
	for i := range b.N {
		ch <- qItem{S: uint32(i)}
		it = <-ch
	}
	chEl := time.Since(t0)
	raw := rawPingPong(b, b.N)
	b.ReportMetric(float64(el.Nanoseconds())/float64(b.N), "ns/put+get")
	b.ReportMetric(float64(chEl.Nanoseconds())/float64(b.N), "ns/put+get-channel")
	b.ReportMetric(float64(el)/float64(max(chEl, 1)), "x-channel")
	// A Put and a Get are two round trips to the hub.
	b.ReportMetric(float64(el)/2/float64(max(raw, 1)), "x-raw-roundtrip")
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
		var m queueMsg
		for peer.Recv(&m) == nil {
			if peer.Send(&m) != nil {
				return
			}
		}
	})
	defer wg.Wait()
	defer c.CloseWrite()
	m := queueMsg{Op: opPut, Data: []byte{0x93, 1, 2, 3}}
	t0 := time.Now()
	for i := range n {
		m.Seq = uint64(i)
		if err := c.Send(&m); err != nil {
			b.Fatal(err)
		}
		if err := c.Recv(&m); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(t0)
}
