package benchlab

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkMech runs every mechanism through the lab's own pair and round
// trip: BenchmarkMech/mech=pipe/impl=process/size=64. ns/op is one round
// trip; one-way-MB/s comes from the lab's throughput phase, run once after
// the loop. Compare runs with benchstat.
func BenchmarkMech(b *testing.B) {
	for _, m := range Mechs() {
		for _, size := range fullSizes {
			if m.Notify && size != notifySize {
				continue
			}
			if limit(m, int(size)) != "" {
				continue
			}
			b.Run("mech="+m.Name+"/impl="+string(m.Impl)+"/size="+strconv.Itoa(int(size)), func(b *testing.B) {
				benchCell(b, m, int(size))
			})
		}
	}
}

func benchCell(b *testing.B, m Mech, size int) {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	p, err := startPair(ctx, m, size, -1)
	if err != nil {
		b.Fatal(err)
	}
	failed := true
	defer func() {
		if err := p.wait(failed); err != nil {
			b.Error(err)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if p.onThread != nil {
		if p.offThread != nil {
			defer p.offThread()
		}
		if err := p.onThread(); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, size)
	rt := func() {
		buf[0] = opEcho
		if err := p.end.Send(buf); err != nil {
			b.Fatal(err)
		}
		if err := p.end.Recv(buf); err != nil {
			b.Fatal(err)
		}
	}
	rt() // wait for the echo end to start
	// A process cell yields as the lab's does (see yieldEvery).
	var y yielder
	yield := func(now time.Time) {
		if m.Impl == Process {
			y.at(now)
		}
	}
	b.SetBytes(int64(2 * size))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rt()
		if i&7 == 7 {
			yield(time.Now())
		}
	}
	b.StopTimer()
	if !m.Notify {
		c := &Cell{Mech: m, Size: size}
		if err := c.throughput(ctx, p, 50*time.Millisecond, buf, yield); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(c.MBps(), "one-way-MB/s")
	}
	if err := p.quit(size, false); err != nil {
		b.Fatal(err)
	}
	failed = false
}
