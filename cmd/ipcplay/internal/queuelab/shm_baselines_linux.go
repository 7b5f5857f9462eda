package queuelab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
	"ipcplay/shm"
)

// bareSlots is the bare ring's capacity, as shm's benchmark uses it.
const bareSlots = 1024

// BareRingResult is what the bare ring moved.
type BareRingResult struct {
	Messages int
	Elapsed  time.Duration
}

// MessagesPerSecond is the messages over the elapsed time.
func (r BareRingResult) MessagesPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Messages) / r.Elapsed.Seconds()
}

// RunBareRing moves about messages 64-byte messages from a producer child
// to this process through shm.BareRing: the most two processes sharing a
// ring can do, with no framing, sleeping or crash safety (see
// shm.BareRing). The clock starts once the first BarePublish messages
// have arrived, so the child's start-up is outside it.
func RunBareRing(ctx context.Context, messages int) (BareRingResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := (max(messages, 1) + 2*shm.BarePublish - 1) / shm.BarePublish * shm.BarePublish
	reg, err := shm.New("ipcplay-queue-bare-ring", pageRound(shm.BareRingSize(bareSlots)))
	if err != nil {
		return BareRingResult{}, fmt.Errorf("bare ring: %w", err)
	}
	defer reg.Close()
	br, err := shm.BareRingAt(reg.Bytes(), bareSlots)
	if err != nil {
		return BareRingResult{}, err
	}
	cmd := procs.Command(ctx, shm.RoleBareProducer, "-size", strconv.Itoa(reg.Len()),
		"-slots", strconv.Itoa(bareSlots), "-count", strconv.Itoa(n))
	cmd.ExtraFiles = []*os.File{nil, reg.File()}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return BareRingResult{}, fmt.Errorf("bare ring: %w", err)
	}
	// Recv spins and cannot see ctx. If the producer dies before it has
	// sent all, this process sends the rest itself, so that the receiving
	// goroutine always ends.
	var buf [shm.BareSlot]byte
	done := make(chan BareRingResult, 1)
	go func() {
		br.Recv(shm.BarePublish, &buf)
		t0 := nanotime()
		br.Recv(uint64(n-shm.BarePublish), &buf)
		done <- BareRingResult{Messages: n - shm.BarePublish, Elapsed: time.Duration(nanotime() - t0)}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var res BareRingResult
	select {
	case res = <-done:
		err = <-waited
	case err = <-waited:
		if err != nil {
			var msg [shm.BareSlot]byte
			br.Send(uint64(n)-br.Sent(), &msg)
		}
		res = <-done
	}
	if err != nil {
		return BareRingResult{}, fmt.Errorf("bare ring: %w", err)
	}
	return res, nil
}

// ShmRoundTrip times rounds single values of size bytes sent to an echo
// child through one shm ring and back through another (SPSC, 16 slots).
// spin is shm.RingOptions.Spin on both sides: 0 (the default short spin,
// then a futex sleep) or -1 (spin, never sleep; then the two processes
// are pinned to CPUs 0 and 1 when both are allowed). It also returns the
// futex system calls the two processes made, per round trip.
func ShmRoundTrip(ctx context.Context, size, rounds, spin int) (RoundTrip, float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc := shm.RingConfig{Slots: 16, MaxMessage: size}
	rsize, err := shm.RingSize(rc)
	if err != nil {
		return RoundTrip{}, 0, err
	}
	rsize = (rsize + 63) &^ 63
	reg, err := shm.New("ipcplay-queue-ping", pageRound(2*rsize))
	if err != nil {
		return RoundTrip{}, 0, fmt.Errorf("shm round trip: %w", err)
	}
	defer reg.Close()
	ping, err := shm.MakeRing(reg.Bytes(), 0, rc)
	if err != nil {
		return RoundTrip{}, 0, err
	}
	pong, err := shm.MakeRing(reg.Bytes(), rsize, rc)
	if err != nil {
		return RoundTrip{}, 0, err
	}
	pin := spin < 0 && canPin()
	args := []string{"-size", strconv.Itoa(reg.Len()), "-in", "0", "-out", strconv.Itoa(rsize), "-spin", strconv.Itoa(spin),
		"-rounds", strconv.Itoa(warmRounds + rounds)}
	if pin {
		args = append(args, "-cpu", "1")
	}
	cmd := procs.Command(ctx, shm.RoleRingEcho, args...)
	cmd.ExtraFiles = []*os.File{nil, reg.File()}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	opt := shm.RingOptions{Spin: spin}
	p, err := ping.Producer(opt)
	if err != nil {
		return RoundTrip{}, 0, err
	}
	defer p.Close()
	c, err := pong.Consumer(opt)
	if err != nil {
		return RoundTrip{}, 0, err
	}
	defer c.Close()
	if err := cmd.Start(); err != nil {
		return RoundTrip{}, 0, fmt.Errorf("shm round trip: %w", err)
	}
	// A child that dies ends the pings, which could wait for it for ever
	// if it died before attaching to the pong ring.
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	waited := make(chan error, 1)
	go func() {
		waited <- cmd.Wait()
		stop()
	}()
	lat := make([]int64, 0, rounds)
	v, got := make([]byte, size), make([]byte, 0, size)
	pings := func() error {
		for i := range warmRounds + rounds {
			t := nanotime()
			if err := p.Send(pctx, v); err != nil {
				return err
			}
			var err error
			if got, err = c.Recv(pctx, got[:0]); err != nil {
				return err
			}
			if i >= warmRounds {
				lat = append(lat, nanotime()-t)
			}
		}
		return nil
	}
	if pin {
		err = pinned(0, pings)
	} else {
		err = pings()
	}
	if err != nil {
		cancel() // the echo child may still wait for a ping
	}
	if werr := <-waited; werr != nil {
		err = werr // the child's failure explains the pings'
	}
	if err != nil {
		return RoundTrip{}, 0, fmt.Errorf("shm round trip: %w", err)
	}
	pc, cc := p.Counters(), c.Counters()
	futex := pc.FutexWaits + pc.FutexWakes + cc.FutexWaits + cc.FutexWakes
	var child uint64
	if _, err := fmt.Sscanf(out.String(), "futex=%d", &child); err != nil {
		return RoundTrip{}, 0, fmt.Errorf("shm round trip: echo printed %q", out.String())
	}
	return roundTripOf(lat), float64(futex+child) / float64(warmRounds+rounds), nil
}

// canPin reports whether CPUs 0 and 1 are both this process's.
func canPin() bool {
	var set unix.CPUSet
	return unix.SchedGetaffinity(0, &set) == nil && set.IsSet(0) && set.IsSet(1)
}

// pinned runs fn on this goroutine's thread pinned to cpu, and restores
// the thread's CPU set afterwards.
func pinned(cpu int, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fn()
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fn()
	}
	defer unix.SchedSetaffinity(0, &old)
	return fn()
}
