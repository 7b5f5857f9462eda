package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
)

// rolePipeEcho reads 64-byte messages from fd procs.FDExtra and writes each
// back to fd procs.FDExtra+1 until EOF: the raw pipe round trip.
const rolePipeEcho = "shm-test-pipe-echo"

func pipeEchoMain(_ context.Context, args []string) error {
	in, err := procs.ChildFile(procs.FDExtra, procs.Pipe, "in")
	if err != nil {
		return err
	}
	out, err := procs.ChildFile(procs.FDExtra+1, procs.Pipe, "out")
	if err != nil {
		return err
	}
	buf := make([]byte, 64)
	for {
		if _, err := io.ReadFull(in, buf); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
}

// BenchmarkRingThroughput moves 64-byte messages from one producer process
// to the benchmark's process as consumer, through the ring (SPSC and MPMC)
// and through the bare ring, and between two goroutines through a buffered
// channel, so that one run compares them all. Child start-up is excluded:
// the timer starts once the first message has arrived.
func BenchmarkRingThroughput(b *testing.B) {
	b.Run("impl=chan", func(b *testing.B) {
		ch := make(chan [64]byte, 1024)
		go func() {
			var m [64]byte
			for i := range b.N {
				binary.LittleEndian.PutUint64(m[:], uint64(i))
				ch <- m
			}
			close(ch)
		}()
		var sum uint64
		for m := range ch {
			sum += binary.LittleEndian.Uint64(m[:])
		}
		reportRate(b, b.N, 0)
	})
	b.Run("impl=chan-int", func(b *testing.B) {
		ch := make(chan int, 1024)
		go func() {
			for i := range b.N {
				ch <- i
			}
			close(ch)
		}()
		sum := 0
		for v := range ch {
			sum += v
		}
		reportRate(b, b.N, 0)
	})
	b.Run("impl=bare", func(b *testing.B) {
		n := (b.N + 2*BarePublish - 1) / BarePublish * BarePublish
		reg := ringRegion(b, (BareRingSize(1024)+4095)&^4095)
		br, err := BareRingAt(reg.Bytes(), 1024)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
		defer cancel()
		c := startRing(b, ctx, reg, RoleBareProducer, nil, "-slots", "1024", "-count", strconv.Itoa(n))
		var buf [BareSlot]byte
		br.Recv(BarePublish, &buf)
		b.ResetTimer()
		sum := br.Recv(uint64(n-BarePublish), &buf)
		b.StopTimer()
		if want := uint64(n)*uint64(n-1)/2 - BarePublish*(BarePublish-1)/2; sum != want {
			b.Fatalf("bare ring: sum of positions = %d, want %d", sum, want)
		}
		if err := c.wait(); err != nil {
			b.Fatal(err)
		}
		reportRate(b, n-BarePublish, 0)
	})
	for _, mode := range []RingMode{SPSC, MPMC} {
		b.Run("impl=ring-"+mode.String(), func(b *testing.B) {
			benchRingThroughput(b, mode)
		})
	}
}

func benchRingThroughput(b *testing.B, mode RingMode) {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	reg, r, _ := newRingRegion(b, RingConfig{Mode: mode, Slots: 1024, MaxMessage: 64}, 0)
	n := b.N + 1
	p := startRing(b, ctx, reg, RoleRingProducer, nil, "-count", strconv.Itoa(n), "-msg", "64", "-batch", "32", "-stamp=false")
	c, err := r.Consumer(RingOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var buf [64]byte
	var sum uint64
	fn := func(m []byte) {
		copy(buf[:], m)
		sum += binary.LittleEndian.Uint64(buf[:])
	}
	got, err := c.RecvBatch(ctx, 1, fn)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for got < n {
		k, err := c.RecvBatch(ctx, 256, fn)
		if err != nil {
			b.Fatal(err)
		}
		got += k
	}
	b.StopTimer()
	if err := p.wait(); err != nil {
		b.Fatal(err)
	}
	if want := uint64(n) * uint64(n-1) / 2; sum != want {
		b.Fatalf("sum of sequence numbers = %d, want %d", sum, want)
	}
	cc := c.Counters()
	reportRate(b, n-1, cc.FutexWaits+cc.FutexWakes+p.field(b, "futex"))
	b.ReportMetric(float64(cc.Batches)/float64(n), "releases/msg")
}

func reportRate(b *testing.B, n int, syscalls uint64) {
	el := b.Elapsed()
	b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(n), "ns/msg")
	b.ReportMetric(float64(syscalls)/float64(n), "syscalls/msg")
}

// pinned runs fn with the calling goroutine locked to its thread and the
// thread pinned to cpu, if this process may run there; it restores the
// thread's CPU set afterwards. It reports whether it pinned.
func pinned(cpu int, fn func()) bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil || !old.IsSet(cpu) || old.Count() < 2 {
		fn()
		return false
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		fn()
		return false
	}
	defer unix.SchedSetaffinity(0, &old)
	fn()
	return true
}

// canPin reports whether CPUs 0 and 1 are both ours, so that the spinning
// round trips can put the two processes on different CPUs.
func canPin() bool {
	var set unix.CPUSet
	return unix.SchedGetaffinity(0, &set) == nil && set.IsSet(0) && set.IsSet(1)
}

// BenchmarkRingPingPong sends a 64-byte message to a child that sends it
// back: through two pipes (the raw pipe round trip), through two rings
// whose waiters sleep on futexes (spin=1: at once; spin=200: the default
// short spin first), through two rings whose waiters spin, and, when a C
// compiler is present, the C spin reference of testdata. The spinning
// variants pin parent and child to CPUs 0 and 1 when both are allowed.
func BenchmarkRingPingPong(b *testing.B) {
	b.Run("impl=pipe", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
		defer cancel()
		toR, toW, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		fromR, fromW, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		reg := ringRegion(b, 4096)
		c := startRing(b, ctx, reg, rolePipeEcho, []*os.File{toR, fromW})
		toR.Close()
		fromW.Close()
		defer fromR.Close()
		buf := make([]byte, 64)
		rtt := func() {
			if _, err := toW.Write(buf); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(fromR, buf); err != nil {
				b.Fatal(err)
			}
		}
		rtt()
		med := timeRounds(b, rtt)
		toW.Close()
		if err := c.wait(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/rtt")
		b.ReportMetric(med, "median-ns/rtt")
		b.ReportMetric(4, "syscalls/rtt")
	})
	for _, spin := range []int{1, 200, -1} {
		name := "impl=ring-futex/spin=" + strconv.Itoa(spin)
		if spin < 0 {
			name = "impl=ring-spin"
		}
		b.Run(name, func(b *testing.B) { benchRingPingPong(b, spin, 64) })
	}
	// 8 bytes, as the C reference moves: the slot word and the message
	// share one cache line.
	b.Run("impl=ring-spin/size=8", func(b *testing.B) { benchRingPingPong(b, -1, 8) })
	b.Run("impl=c-spin", func(b *testing.B) { benchCSpin(b, 0) })
	// The C reference moving a 64-byte message each way beside its word,
	// as the ring does: the message's line is a second cache-line
	// transfer per direction.
	b.Run("impl=c-spin/size=64", func(b *testing.B) { benchCSpin(b, 64) })
}

// benchCSpin runs testdata/shm-spin-pingpong.c for b.N round trips,
// copying a message of size bytes each way (0: only the words).
func benchCSpin(b *testing.B, size int) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		b.Skip("no C compiler")
	}
	bin := filepath.Join(b.TempDir(), "spin")
	if out, err := exec.Command(cc, "-O2", "-o", bin, "../testdata/shm-spin-pingpong.c").CombinedOutput(); err != nil {
		b.Fatalf("build C spin reference: %v\n%s", err, out)
	}
	args := []string{strconv.Itoa(b.N), "-1", "-1", strconv.Itoa(size)}
	if canPin() {
		args[1], args[2] = "0", "1"
	}
	out, err := exec.CommandContext(b.Context(), bin, args...).Output()
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) < 13 {
		b.Fatalf("C spin reference printed %q", out)
	}
	med, _ := strconv.ParseFloat(f[6], 64)
	mean, _ := strconv.ParseFloat(f[9], 64)
	b.ReportMetric(mean, "ns/rtt")
	b.ReportMetric(med, "median-ns/rtt")
}

func benchRingPingPong(b *testing.B, spin, size int) {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	cfg := RingConfig{Slots: 16, MaxMessage: size}
	rsize, err := RingSize(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rsize = (rsize + 63) &^ 63
	reg := ringRegion(b, (2*rsize+4095)&^4095)
	ping, err := MakeRing(reg.Bytes(), 0, cfg)
	if err != nil {
		b.Fatal(err)
	}
	pong, err := MakeRing(reg.Bytes(), rsize, cfg)
	if err != nil {
		b.Fatal(err)
	}
	pin := spin < 0 && canPin()
	args := []string{"-in", "0", "-out", strconv.Itoa(rsize), "-spin", strconv.Itoa(spin)}
	if pin {
		args = append(args, "-cpu", "1")
	}
	c := startRing(b, ctx, reg, RoleRingEcho, nil, args...)
	opt := RingOptions{Spin: spin}
	p, err := ping.Producer(opt)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := pong.Consumer(opt)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, size)
	buf := make([]byte, 0, size)
	rtt := func() {
		if err := p.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if buf, err = cons.Recv(ctx, buf[:0]); err != nil || len(buf) != size {
			b.Fatalf("Recv = %d bytes, %v", len(buf), err)
		}
	}
	var med float64
	run := func() {
		rtt()
		med = timeRounds(b, rtt)
	}
	if pin {
		pinned(0, run)
	} else {
		run()
	}
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	if err := c.wait(); err != nil {
		b.Fatal(err)
	}
	cons.Close()
	pc, cc := p.Counters(), cons.Counters()
	sys := pc.FutexWaits + pc.FutexWakes + cc.FutexWaits + cc.FutexWakes + c.field(b, "futex")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/rtt")
	b.ReportMetric(med, "median-ns/rtt")
	b.ReportMetric(float64(sys)/float64(b.N+1), "syscalls/rtt")
}

// timeRounds runs b.N round trips, timing each, and returns the median in
// ns: on a shared machine the mean is ruled by preemptions.
func timeRounds(b *testing.B, rtt func()) float64 {
	d := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range d {
		t0 := time.Now()
		rtt()
		d[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(d)
	return float64(d[len(d)/2].Nanoseconds())
}
