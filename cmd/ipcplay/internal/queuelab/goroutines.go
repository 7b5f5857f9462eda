package queuelab

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"ipcplay/procs/cost"
)

// chanSize is the size of the array the goroutine side carries for values
// of size bytes: the smallest of 16, 64, 256, 1024 and 4096 that holds them.
// A channel's element type is fixed when the program is compiled.
func chanSize(size int) int {
	for _, n := range []int{16, 64, 256, 1024} {
		if size <= n {
			return n
		}
	}
	return 4096
}

// withArray calls f with the view of the array type chanSize(size) picks.
func withArray[R any](size int, f16 func(func(*[16]byte) []byte) R, f64 func(func(*[64]byte) []byte) R,
	f256 func(func(*[256]byte) []byte) R, f1k func(func(*[1024]byte) []byte) R, f4k func(func(*[4096]byte) []byte) R) R {
	switch chanSize(size) {
	case 16:
		return f16(func(v *[16]byte) []byte { return v[:] })
	case 64:
		return f64(func(v *[64]byte) []byte { return v[:] })
	case 256:
		return f256(func(v *[256]byte) []byte { return v[:] })
	case 1024:
		return f1k(func(v *[1024]byte) []byte { return v[:] })
	}
	return f4k(func(v *[4096]byte) []byte { return v[:] })
}

type runResult struct {
	res Result
	err error
}

// runGoroutines is the lab's goroutine side: the same values, the same
// checks, through a buffered channel of capacity cfg.Capacity.
func runGoroutines(ctx context.Context, cfg Config) (Result, error) {
	r := withArray(cfg.Size,
		func(view func(*[16]byte) []byte) runResult { return goroutineRun(ctx, cfg, view) },
		func(view func(*[64]byte) []byte) runResult { return goroutineRun(ctx, cfg, view) },
		func(view func(*[256]byte) []byte) runResult { return goroutineRun(ctx, cfg, view) },
		func(view func(*[1024]byte) []byte) runResult { return goroutineRun(ctx, cfg, view) },
		func(view func(*[4096]byte) []byte) runResult { return goroutineRun(ctx, cfg, view) })
	return r.res, r.err
}

func goroutineRun[V any](ctx context.Context, cfg Config, view func(*V) []byte) runResult {
	t0 := time.Now()
	ch := make(chan V, cfg.Capacity)
	mask := sampleMask(cfg.Messages)
	cks := make([]*checker, cfg.Consumers)
	errs := make([]error, cfg.Consumers)
	start := make(chan struct{})
	var cwg, pwg sync.WaitGroup
	for c := range cfg.Consumers {
		ck := newChecker(cfg)
		cks[c] = ck
		cwg.Go(func() {
			v := new(V)
			b := view(v)
			for *v = range ch {
				if err := ck.take(b); err != nil && errs[c] == nil {
					errs[c] = err
				}
			}
			ck.last = nanotime()
		})
	}
	for p := range cfg.Producers {
		pwg.Go(func() {
			<-start
			v := new(V)
			b := view(v)
			for s := range cfg.share(p) {
				putValue(b, uint32(p), uint32(s), mask)
				ch <- *v
				if s&1023 == 1023 && ctx.Err() != nil {
					return
				}
			}
		})
	}
	setup := time.Since(t0)
	ctr, cerr := cost.Start(os.Getpid())
	begin := nanotime()
	close(start)
	pwg.Wait()
	close(ch)
	cwg.Wait()
	end := nanotime()
	res := Result{Mode: Goroutines, Sent: cfg.Messages, Setup: setup, Shutdown: ShutdownClose, Elapsed: time.Duration(end - begin)}
	if cerr == nil {
		res.Cost, cerr = ctr.Stop()
		ctr.Close()
	}
	if err := ctx.Err(); err != nil {
		return runResult{err: context.Cause(ctx)}
	}
	for c, err := range errs {
		if err != nil {
			return runResult{err: fmt.Errorf("queue lab: goroutine consumer %d: %w", c, err)}
		}
	}
	tally(cfg, cks, &res)
	res.CostErr = cerr
	return runResult{res: res}
}

// RunChannel moves cfg's values between goroutines through a bare
// buffered channel of capacity cfg.Capacity: no checks, no time stamps,
// the same producers and consumers. Its rate is what the lab's goroutine
// side is measured against.
func RunChannel(ctx context.Context, cfg Config) (Result, error) {
	r := withArray(cfg.Size,
		func(func(*[16]byte) []byte) runResult { return bareRun[[16]byte](ctx, cfg) },
		func(func(*[64]byte) []byte) runResult { return bareRun[[64]byte](ctx, cfg) },
		func(func(*[256]byte) []byte) runResult { return bareRun[[256]byte](ctx, cfg) },
		func(func(*[1024]byte) []byte) runResult { return bareRun[[1024]byte](ctx, cfg) },
		func(func(*[4096]byte) []byte) runResult { return bareRun[[4096]byte](ctx, cfg) })
	return r.res, r.err
}

func bareRun[V any](ctx context.Context, cfg Config) runResult {
	ch := make(chan V, cfg.Capacity)
	counts := make([]int, cfg.Consumers)
	start := make(chan struct{})
	var cwg, pwg sync.WaitGroup
	for c := range cfg.Consumers {
		cwg.Go(func() {
			v := new(V)
			n := 0
			for *v = range ch {
				n++
			}
			counts[c] = n
		})
	}
	for p := range cfg.Producers {
		pwg.Go(func() {
			<-start
			var v V
			for s := range cfg.share(p) {
				ch <- v
				if s&1023 == 1023 && ctx.Err() != nil {
					return
				}
			}
		})
	}
	begin := nanotime()
	close(start)
	pwg.Wait()
	close(ch)
	cwg.Wait()
	end := nanotime()
	if err := ctx.Err(); err != nil {
		return runResult{err: context.Cause(ctx)}
	}
	res := Result{Mode: "channel", Sent: cfg.Messages, Elapsed: time.Duration(end - begin)}
	for _, n := range counts {
		res.Received += n
	}
	return runResult{res: res}
}

// RoundTrip is the latency of one message there and back, alone in flight.
type RoundTrip struct {
	Rounds   int
	P50, P99 time.Duration
}

func roundTripOf(lat []int64) RoundTrip {
	if len(lat) == 0 {
		return RoundTrip{}
	}
	slices.Sort(lat)
	return RoundTrip{Rounds: len(lat), P50: percentile(lat, 0.5), P99: percentile(lat, 0.99)}
}

// warmRounds are round trips made before the timed ones.
const warmRounds = 20

// ChannelRoundTrip times rounds single values of size bytes sent to a
// goroutine over one channel and back over another.
func ChannelRoundTrip(ctx context.Context, size, rounds int) (RoundTrip, error) {
	r := withArray(size,
		func(func(*[16]byte) []byte) []int64 { return chanPingPong[[16]byte](ctx, rounds) },
		func(func(*[64]byte) []byte) []int64 { return chanPingPong[[64]byte](ctx, rounds) },
		func(func(*[256]byte) []byte) []int64 { return chanPingPong[[256]byte](ctx, rounds) },
		func(func(*[1024]byte) []byte) []int64 { return chanPingPong[[1024]byte](ctx, rounds) },
		func(func(*[4096]byte) []byte) []int64 { return chanPingPong[[4096]byte](ctx, rounds) })
	if err := ctx.Err(); err != nil {
		return RoundTrip{}, context.Cause(ctx)
	}
	return roundTripOf(r), nil
}

func chanPingPong[V any](ctx context.Context, rounds int) []int64 {
	ping, pong := make(chan V, 1), make(chan V, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for v := range ping {
			pong <- v
		}
	})
	defer wg.Wait()
	defer close(ping)
	lat := make([]int64, 0, rounds)
	var v V
	for i := range warmRounds + rounds {
		if ctx.Err() != nil {
			break
		}
		t := nanotime()
		ping <- v
		v = <-pong
		if i >= warmRounds {
			lat = append(lat, nanotime()-t)
		}
	}
	return lat
}
