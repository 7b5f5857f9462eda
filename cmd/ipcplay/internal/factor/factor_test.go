package factor

import (
	"context"
	"ipcplay/cmd/ipcplay/internal/labtest"
	"slices"
	"testing"
	"time"
)

func TestFactorize(t *testing.T) {
	cases := map[uint64][]uint64{
		0: nil, 1: nil, 2: {2}, 4: {2, 2}, 6: {2, 3}, 9: {3, 3}, 12: {2, 2, 3},
		97: {97}, 1000000: {2, 2, 2, 2, 2, 2, 5, 5, 5, 5, 5, 5}, 999983: {999983},
		600851475143: {71, 839, 1471, 6857},
	}
	for n, want := range cases {
		if got := Factorize(n, nil); !slices.Equal(got, want) {
			t.Errorf("Factorize(%d) = %v, want %v", n, got, want)
		}
	}
	// Every result multiplies back to n and is made of primes.
	for n := uint64(2); n < 5000; n++ {
		prod := uint64(1)
		for _, f := range Factorize(n, nil) {
			prod *= f
			if len(Factorize(f, nil)) != 1 {
				t.Fatalf("Factorize(%d) has non-prime %d", n, f)
			}
		}
		if prod != n {
			t.Fatalf("Factorize(%d) multiplies to %d", n, prod)
		}
	}
}

func TestSieveSum(t *testing.T) {
	for _, upto := range []uint64{0, 1, 2, 10, 1000, 12345} {
		var want uint64
		for n := uint64(1); n <= upto; n++ {
			for _, f := range Factorize(n, nil) {
				want += f
			}
		}
		if got := SieveSum(upto); got != want {
			t.Errorf("SieveSum(%d) = %d, want %d", upto, got, want)
		}
	}
}

func TestRunModesAgree(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const upto = 30000
	want := SieveSum(upto)
	for _, mode := range []Mode{Procs, Goroutines} {
		for _, chunk := range []int{1, 64, 100000, 0} {
			res, err := Run(ctx, mode, Config{UpTo: upto, Workers: 2, ChunkSize: chunk})
			if err != nil {
				t.Fatalf("%s chunk %d: %v", mode, chunk, err)
			}
			if res.SumOfFactors != want || res.Tasks != upto {
				t.Errorf("%s chunk %d: sum %d over %d tasks, want %d", mode, chunk, res.SumOfFactors, res.Tasks, want)
			}
		}
	}
	labtest.NoChildren(t)
}

func TestRunStartupApart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, Procs, Config{UpTo: 5000, Workers: 2, SpawnBaseline: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Startups.N != 2 || res.Startups.Min <= 0 || res.Bare.N != 2 || res.Bare.Min <= 0 {
		t.Errorf("startups %v, bare %v: want two of each", res.Startups, res.Bare)
	}
	if res.Chunks < 2 || res.Chunks > 5000 {
		t.Errorf("%d chunks for 5000 tasks on 2 workers at the pool's choice", res.Chunks)
	}
	labtest.NoChildren(t)
}

func TestRunKillWorker(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const upto = 50000
	res, err := Run(ctx, Procs, Config{UpTo: upto, Workers: 2, ChunkSize: 100, KillWorker: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.SumOfFactors != SieveSum(upto) {
		t.Errorf("sum %d after a kill, want %d", res.SumOfFactors, SieveSum(upto))
	}
	if res.Killed == 0 || len(res.Events) != 1 || res.Events[0].PID != res.Killed || res.Events[0].Signal != "SIGKILL" {
		t.Errorf("killed %d, events %+v", res.Killed, res.Events)
	}
	labtest.NoChildren(t)
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, mode := range []Mode{Procs, Goroutines} {
		mctx, mcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := Run(mctx, mode, Config{UpTo: 1 << 40, Workers: 2, ChunkSize: 100})
		mcancel()
		if err == nil {
			t.Errorf("%s: a cancelled run succeeded", mode)
		}
	}
	labtest.NoChildren(t)
}
