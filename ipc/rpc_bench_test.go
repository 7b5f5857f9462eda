package ipc

import (
	"context"
	"fmt"

	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ipcplay/procs"
)

// startEchoTB starts the echo child of conn_test.go for a benchmark.
func startEchoTB(b *testing.B) *Conn {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	c, theirs, err := Pair(Stream)
	if err != nil {
		b.Fatal(err)
	}
	cmd := procs.Command(ctx, echoRole)
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	theirs.Close()
	b.Cleanup(func() {
		c.CloseWrite()
		var m testMsg
		for c.Recv(&m) == nil {
		}
		c.Close()
		cmd.Wait()
		cancel()
	})
	return c
}

// rawRoundTrips sends n messages to the echo child with at most inFlight
// outstanding, and receives their echoes.
func rawRoundTrips(b *testing.B, c *Conn, n, inFlight int) {
	msg := testMsg{Body: "0123456789abcdef0123456789abcdef"}
	if inFlight == 1 {
		var got testMsg
		for i := range n {
			msg.Seq = int64(i)
			if err := c.Send(&msg); err != nil {
				b.Fatal(err)
			}
			if err := c.Recv(&got); err != nil || got.Seq != int64(i) {
				b.Fatalf("echo %d: %+v, %v", i, got, err)
			}
		}
		return
	}
	slots := make(chan struct{}, inFlight)
	done := make(chan error, 1)
	go func() {
		var got testMsg
		for i := range n {
			if err := c.Recv(&got); err != nil || got.Seq != int64(i) {
				done <- fmt.Errorf("echo %d: %+v, %v", i, got, err)
				return
			}
			<-slots
		}
		done <- nil
	}()
	for i := range n {
		slots <- struct{}{}
		msg.Seq = int64(i)
		if err := c.Send(&msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// rpcCalls makes n calls of echomsg with callers goroutines.
func rpcCalls(b *testing.B, cl *Client, n, callers int) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range callers {
		wg.Go(func() {
			msg := testMsg{Body: "0123456789abcdef0123456789abcdef"}
			var got testMsg
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				msg.Seq = i
				if err := cl.Call(ctx, "echomsg", &msg, &got); err != nil || got.Seq != i {
					failed.CompareAndSwap(nil, fmt.Errorf("call %d: %+v, %v", i, got, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

func report(b *testing.B, elapsed time.Duration, n int) {
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/roundtrip")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "calls/s")
}

// BenchmarkRoundTrip compares an RPC call (to a server child, through the
// Client and Server) with a raw msgpack round trip over a Conn (to the
// echo child), the same 40-byte message each way. With callers=8, eight
// calls are in flight at once; ns/roundtrip is then the inverse of the
// throughput.
func BenchmarkRoundTrip(b *testing.B) {
	for _, callers := range []int{1, 8} {
		b.Run(fmt.Sprintf("kind=raw/callers=%d", callers), func(b *testing.B) {
			c := startEchoTB(b)
			rawRoundTrips(b, c, 100, callers) // warm up
			start := time.Now()
			rawRoundTrips(b, c, b.N, callers)
			report(b, time.Since(start), b.N)
		})
		b.Run(fmt.Sprintf("kind=rpc/callers=%d", callers), func(b *testing.B) {
			path := startRPCChild(b)
			cl, err := DialClient(context.Background(), path, testKey, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			rpcCalls(b, cl, 100, callers)
			start := time.Now()
			rpcCalls(b, cl, b.N, callers)
			report(b, time.Since(start), b.N)
		})
	}
}

// BenchmarkRPCOverRaw alternates raw and RPC round trips in one run, one
// caller, and reports their ratio: the cost RPC adds over the framed
// messages it is built on (the aim: at most 1.5).
func BenchmarkRPCOverRaw(b *testing.B) {
	c := startEchoTB(b)
	path := startRPCChild(b)
	cl, err := DialClient(context.Background(), path, testKey, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	rawRoundTrips(b, c, 100, 1)
	rpcCalls(b, cl, 100, 1)
	var raw, rpc time.Duration
	const batch = 200
	for done := 0; done < b.N; done += batch {
		start := time.Now()
		rawRoundTrips(b, c, batch, 1)
		raw += time.Since(start)
		start = time.Now()
		rpcCalls(b, cl, batch, 1)
		rpc += time.Since(start)
	}
	n := (b.N + batch - 1) / batch * batch
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(raw.Nanoseconds())/float64(n), "raw-ns/roundtrip")
	b.ReportMetric(float64(rpc.Nanoseconds())/float64(n), "rpc-ns/roundtrip")
	b.ReportMetric(float64(rpc)/float64(raw), "rpc/raw")
}
