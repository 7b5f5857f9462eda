package shm

import (
	"context"
	"sync"
	"testing"
	"time"
)

// BenchmarkMutexUncontended locks and unlocks a Mutex in a region, one
// goroutine, no waiters: one CAS and one swap, no system call. It also
// times sync.Mutex for as many iterations and reports the ratio.
func BenchmarkMutexUncontended(b *testing.B) {
	r, err := New("bench", 4096)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	m, err := r.Mutex(0)
	if err != nil {
		b.Fatal(err)
	}
	var sm sync.Mutex
	ctx := context.Background()
	t0 := time.Now()
	for range b.N {
		sm.Lock()
		//lint:ignore SA2001 the lock and unlock are what is measured
		sm.Unlock()
	}
	base := time.Since(t0)
	b.ResetTimer()
	for range b.N {
		if err := m.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		m.Unlock()
	}
	b.StopTimer()
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "sync-ns/op")
	b.ReportMetric(float64(b.Elapsed())/float64(max(base, 1)), "x-sync.Mutex")
}

// BenchmarkMutexContended has the lock fought over: by goroutines of this
// process (lock=shm against lock=sync), and by this process against one
// child process spinning on it (lock=shm-procs).
func BenchmarkMutexContended(b *testing.B) {
	b.Run("lock=sync", func(b *testing.B) {
		var m sync.Mutex
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Lock()
				//lint:ignore SA2001 the lock and unlock are what is measured
				m.Unlock()
			}
		})
	})
	b.Run("lock=shm", func(b *testing.B) {
		m, err := MutexAt(Local(MutexSize), 0)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := m.Lock(ctx); err != nil {
					b.Error(err)
					return
				}
				m.Unlock()
			}
		})
	})
	b.Run("lock=shm-procs", func(b *testing.B) {
		r, err := New("bench", lockRegionSize)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		lb, err := lockViews(r)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		wait := startChildren(b, ctx, lb, 1, roleSpin, nil)
		for lb.vals.Load(valWaiting) != 1 {
			time.Sleep(time.Millisecond)
		}
		b.ResetTimer()
		for range b.N {
			if err := lb.mu.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			lb.mu.Unlock()
		}
		b.StopTimer()
		lb.ev.Set()
		if err := wait(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(lb.vals.Load(valTotal)), "child-locks")
	})
}
