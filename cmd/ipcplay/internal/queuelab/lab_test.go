package queuelab

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"ipcplay/procs"
)

func TestMain(m *testing.M) {
	// A program built with -race sleeps a second before it exits
	// (GORACE atexit_sleep_ms, 1000 by default), which the children
	// inherit: a consumer that is done would outlive a 1 s watchdog.
	if _, ok := os.LookupEnv("GORACE"); !ok {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	RegisterRoles()
	registerDeadlockTestRoles()
	procs.Init()
	os.Exit(m.Run())
}

func TestRunBothModes(t *testing.T) {
	cfg := Config{Producers: 2, Consumers: 2, Messages: 5000, Size: 64, Capacity: 32, Window: 8}
	for _, mode := range []Mode{Procs, Goroutines} {
		t.Run(string(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			res, err := Run(ctx, mode, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() || res.Sent != cfg.Messages || res.Received != cfg.Messages {
				t.Fatalf("not exactly once: %+v", res)
			}
			if res.LatencyP50 <= 0 || res.LatencyP99 < res.LatencyP50 || res.Elapsed <= 0 {
				t.Fatalf("implausible timings: %+v", res)
			}
		})
	}
}

// value returns producer p's value s, as putValue writes it.
func value(p, s uint32) []byte {
	v := make([]byte, 64)
	putValue(v, p, s, 0) // every value stamped
	return v
}

func TestTallyFindsLossDuplicatesAndReorder(t *testing.T) {
	cfg := Config{Producers: 2, Consumers: 2, Messages: 6, Capacity: 1, Size: 64}
	a, b := newChecker(cfg), newChecker(cfg)
	for _, v := range [][]byte{value(0, 0), value(0, 2), value(0, 1), value(1, 0)} {
		if err := a.take(v); err != nil {
			t.Fatal(err)
		}
	}
	// b has producer 1's value 0 again (a duplicate across consumers) and
	// value 1 twice (a duplicate inside one consumer, and out of order).
	for _, v := range [][]byte{value(1, 0), value(1, 1), value(1, 1)} {
		if err := b.take(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.take(value(1, 3)); err == nil {
		t.Errorf("take(never sent) = nil, want an error")
	}
	var res Result
	tally(cfg, []*checker{a, b}, &res)
	res.Sent = cfg.Messages
	// Lost: producer 1's value 2. Reordered: a's 0/1 after 0/2, b's second 1/1.
	if res.Received != 7 || res.Duplicates != 2 || res.Lost != 1 || res.Reordered != 2 || res.OK() {
		t.Fatalf("tally = %+v, want 7 received, 2 duplicates, 1 lost, 2 reordered", res)
	}
	if res.Samples != 7 || res.LatencyP50 < 0 {
		t.Fatalf("tally: %d samples, p50 %v; want 7 and >= 0", res.Samples, res.LatencyP50)
	}
}

func TestCheckerWireRoundTrip(t *testing.T) {
	cfg := Config{Producers: 3, Consumers: 1, Messages: 1000, Capacity: 1, Size: 64}
	c := newChecker(cfg)
	for s := range cfg.share(1) {
		if err := c.take(value(1, uint32(s))); err != nil {
			t.Fatal(err)
		}
	}
	c.last = 12345
	var buf bytes.Buffer
	if err := c.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := readChecker(cfg, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got.count != c.count || got.last != c.last || !slices.Equal(got.lat, c.lat) || !slices.Equal(got.bits[1], c.bits[1]) {
		t.Fatalf("readChecker(writeTo(c)) differs: %+v, want %+v", got, c)
	}
	if _, err := readChecker(cfg, buf.Bytes()[:buf.Len()-1]); err == nil {
		t.Errorf("readChecker(cut short) = nil error")
	}
}

func TestSampleMask(t *testing.T) {
	for _, tc := range []struct{ messages, want int }{{1, 0}, {4096, 1}, {1_000_000, 511}, {100_000_000, 1023}} {
		if got := sampleMask(tc.messages); int(got) != tc.want {
			t.Errorf("sampleMask(%d) = %d, want %d", tc.messages, got, tc.want)
		}
	}
}

func TestBaselines(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cfg := Config{Producers: 2, Consumers: 2, Messages: 10_000, Size: 64, Capacity: 64}
	ch, err := RunChannel(ctx, cfg)
	if err != nil || ch.Received != cfg.Messages || ch.Elapsed <= 0 {
		t.Errorf("RunChannel = %+v, %v; want %d received", ch, err, cfg.Messages)
	}
	for _, f := range []func(context.Context, int, int) (RoundTrip, error){QueueRoundTrip, ChannelRoundTrip} {
		rt, err := f(ctx, 64, 50)
		if err != nil || rt.Rounds != 50 || rt.P50 <= 0 || rt.P99 < rt.P50 {
			t.Errorf("round trip = %+v, %v; want 50 rounds, 0 < p50 <= p99", rt, err)
		}
	}
	rate, err := RunPython(ctx, 2000, 64, 100)
	if errors.Is(err, errNoPython) {
		t.Skip(err)
	}
	if err != nil || rate <= 0 {
		t.Errorf("RunPython = %v, %v", rate, err)
	}
}

func TestValidate(t *testing.T) {
	bad := []Config{
		{Producers: 0, Consumers: 1, Messages: 1, Capacity: 1},
		{Producers: 1, Consumers: 0, Messages: 1, Capacity: 1},
		{Producers: 2, Consumers: 1, Messages: 1, Capacity: 1},
		{Producers: 1, Consumers: 1, Messages: 1, Capacity: 0},
		{Producers: 1, Consumers: 1, Messages: 1, Capacity: 1, Size: -1},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v: valid, want an error", c)
		}
	}
}

func TestShutdownStyles(t *testing.T) {
	for _, sd := range []Shutdown{ShutdownClose, ShutdownPoisonPill, ShutdownPoisonPillShort} {
		t.Run(string(sd), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cfg := Config{Producers: 2, Consumers: 3, Messages: 3000, Capacity: 16, Window: 4,
				Size: 64, Shutdown: sd, Watchdog: time.Second}
			res, err := Run(ctx, Procs, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				t.Fatalf("not exactly once: %+v", res)
			}
			wantTerm, wantPills := 0, 3
			switch sd {
			case ShutdownClose:
				wantPills = 0
			case ShutdownPoisonPillShort:
				wantTerm, wantPills = 1, 2
			}
			if res.Terminated != wantTerm || res.Pills != wantPills {
				t.Fatalf("%s: %d consumers terminated and %d pills, want %d and %d", sd, res.Terminated, res.Pills, wantTerm, wantPills)
			}
			if wantTerm > 0 && res.StopLatency < cfg.Watchdog {
				t.Fatalf("stopped after %v, before the %v watchdog", res.StopLatency, cfg.Watchdog)
			}
		})
	}
}

func TestJoinDeadlock(t *testing.T) {
	for _, cfg := range []DeadlockConfig{
		{Via: ViaSocket, Messages: 2000, Size: 4096, Watchdog: 300 * time.Millisecond},
		{Via: ViaQueue, Messages: 100, Size: 64, Capacity: 8, Watchdog: 300 * time.Millisecond},
	} {
		t.Run(string(cfg.Via), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			res, err := RunJoinDeadlock(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ev := res.Evidence
			if !res.Deadlocked || ev.KilledBy != "killed" || ev.PID == 0 {
				t.Fatalf("join first did not deadlock and get killed: %+v", res)
			}
			// Stuck, not busy: asleep, and no CPU time while watched.
			if ev.State != "S" || ev.CPUTicks[1] != ev.CPUTicks[0] {
				t.Errorf("a deadlocked child should sleep and not run: %+v", ev)
			}
			switch cfg.Via {
			case ViaSocket:
				if ev.Unread < 64<<10 {
					t.Errorf("only %d bytes unread in the parent's socket: was the child really blocked on a full socket?", ev.Unread)
				}
			case ViaQueue:
				if ev.HubStats.Len != cfg.Capacity || ev.HubStats.PendingPuts != 1 {
					t.Errorf("hub when the watchdog fired: %+v, want full with one put waiting", ev.HubStats)
				}
			}
			if res.Received != cfg.Messages || res.ExitCode != 0 {
				t.Fatalf("drain first: %d of %d received, exit %d", res.Received, cfg.Messages, res.ExitCode)
			}
		})
	}
}

// TestValuePathDoesNotAllocate: stamping and checking a value that is not
// sampled costs no allocation (and, by construction, no clock read).
func TestValuePathDoesNotAllocate(t *testing.T) {
	cfg := Config{Producers: 1, Consumers: 1, Messages: 1 << 20, Size: 64, Capacity: 1}
	c := newChecker(cfg)
	v := make([]byte, 64)
	s := uint32(1)
	allocs := testing.AllocsPerRun(1000, func() {
		putValue(v, 0, s, c.mask)
		if err := c.take(v); err != nil {
			t.Fatal(err)
		}
		if s++; s&c.mask == 0 {
			s++ // skip the sampled one
		}
	})
	if allocs != 0 {
		t.Errorf("putValue+take: %v allocations per value, want 0", allocs)
	}
}
