package queuelab

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"ipcplay/shm"
)

func TestRunShm(t *testing.T) {
	for _, tc := range []struct {
		producers, consumers int
		mode                 shm.RingMode
	}{
		{1, 1, shm.SPSC},
		{2, 2, shm.MPMC},
		{3, 1, shm.MPMC},
	} {
		cfg := Config{Producers: tc.producers, Consumers: tc.consumers, Messages: 20000, Size: 64, Capacity: 16, Batch: 100}
		t.Run(fmt.Sprintf("producers=%d/consumers=%d", tc.producers, tc.consumers), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			res, err := RunShm(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ring.Mode != tc.mode || res.Ring.Slots != 16 {
				t.Errorf("ring = %v of %d slots, want %v of 16", res.Ring.Mode, res.Ring.Slots, tc.mode)
			}
			if !res.OK() || res.Sent != cfg.Messages || res.Received != cfg.Messages {
				t.Fatalf("not exactly once: %+v", res.Result)
			}
			if res.Samples == 0 || res.Elapsed <= 0 {
				t.Errorf("no latency samples or elapsed time: %+v", res.Result)
			}
			if st := res.Stats; st.LostByProducers+st.LostByConsumers+st.DeadProducers+st.DeadConsumers != 0 {
				t.Errorf("ring stats = %+v, want nothing lost or dead", st)
			}
		})
	}
}

func TestShmRingConfigBoundsMemory(t *testing.T) {
	for _, tc := range []struct {
		capacity, size, slots int
	}{
		{1, 64, 2},
		{1000, 64, 1024},
		{1 << 20, 64, 1 << 19},   // 1 Mi slots of 72 bytes would take 72 MiB
		{1 << 20, 4096, 1 << 13}, // slots of 4,104 bytes: 16 Ki would pass 64 MiB
	} {
		rc := shmRingConfig(Config{Producers: 1, Consumers: 1, Capacity: tc.capacity, Size: tc.size})
		if rc.Slots != tc.slots {
			t.Errorf("shmRingConfig(capacity %d, size %d).Slots = %d, want %d", tc.capacity, tc.size, rc.Slots, tc.slots)
		}
	}
}

func TestCmdShmUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--transport", "shm", "--lab", "poison-pill"}, "--transport shm runs the throughput lab"},
		{[]string{"--transport", "shm", "--mode", "goroutines"}, "use --mode procs or both"},
		{[]string{"--transport", "pipe"}, "--transport pipe: want socket or shm"},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestShmRoundTrip(t *testing.T) {
	for _, spin := range []int{0, -1} {
		t.Run(fmt.Sprintf("spin=%d", spin), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			rt, futex, err := ShmRoundTrip(ctx, 64, 50, spin)
			if err != nil {
				t.Fatal(err)
			}
			if rt.Rounds != 50 || rt.P50 <= 0 || rt.P99 < rt.P50 {
				t.Errorf("round trip = %+v, want 50 rounds, 0 < p50 <= p99", rt)
			}
			if spin < 0 && futex != 0 {
				t.Errorf("spinning: %g futex calls per round trip, want 0", futex)
			}
		})
	}
}

func TestRunBareRing(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := RunBareRing(ctx, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages < 10000-shm.BarePublish || res.Elapsed <= 0 {
		t.Errorf("bare ring = %+v, want about 10,000 messages in a positive time", res)
	}
}
