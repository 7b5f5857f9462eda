package queuelab

import (
	"context"
	"os"
	"testing"
	"time"

	"ipcplay/procs"
)

func TestMain(m *testing.M) {
	RegisterRoles()
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

func TestAccountFindsLossDuplicatesAndReorder(t *testing.T) {
	cfg := Config{Producers: 2, Consumers: 2, Messages: 6, Capacity: 1}
	recs := [][]record{
		{{P: 0, S: 0, Sent: 1, Recv: 2}, {P: 0, S: 2, Sent: 1, Recv: 3}, {P: 0, S: 1, Sent: 1, Recv: 4}},
		{{P: 1, S: 0, Sent: 1, Recv: 2}, {P: 1, S: 0, Sent: 1, Recv: 2}},
	}
	res := account(cfg, recs)
	if res.Received != 5 || res.Duplicates != 1 || res.Lost != 2 || res.Reordered != 2 || res.OK() {
		t.Fatalf("account: %+v", res)
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
				Shutdown: sd, Watchdog: time.Second}
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
