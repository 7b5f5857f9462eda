package benchlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"ipcplay/shm"
)

// The shared-memory mechanisms, shm-spin and shm-copy, pass each message
// through a memfd both processes map: the sender copies it into a slot of
// a ring, one ring per direction, and the receiver copies it out. They
// differ in how a side waits. shm-spin spins on the other side's counter
// (one cache line per direction, never a system call); shm-copy sleeps on
// a futex (shm.Event) and is woken by the other side, a system call on
// each side of each hand-off when the other side is asleep.
//
// A direction's memory is a control page, then its slots:
//
//	0    head: messages written (the sender's cache line)
//	64   tail: messages read (the receiver's cache line)
//	128  data: shm.Event the sender sets after writing (shm-copy)
//	192  space: shm.Event the receiver sets after reading (shm-copy)
//	4096 slots, each a 64-byte header (the length) then the message
const (
	shmCtl     = 4096
	shmHead    = 0
	shmTail    = 64
	shmData    = 128
	shmSpace   = 192
	shmSlotHdr = 64
)

// shmSlots is the number of slots of a direction: as many as the
// throughput window holds, 2 to 8, so that a sender runs ahead of the
// receiver by a few messages.
func shmSlots(size int) int { return min(max(window(size), 2), 8) }

func shmStride(size int) int { return shmSlotHdr + (size+63)&^63 }

func shmDirSize(size int) int {
	return shmCtl + (shmSlots(size)*shmStride(size)+4095)&^4095
}

// shmRegionSize is the memfd's size for messages of up to size bytes.
func shmRegionSize(size int) int { return 2 * shmDirSize(size) }

// shmRing is one direction.
type shmRing struct {
	head, tail  *atomic.Uint64
	data, space *shm.Event // nil when spinning
	slots       []byte
	stride      int
	n           uint64
}

func (r *shmRing) slot(i uint64) []byte {
	off := int(i%r.n) * r.stride
	return r.slots[off : off+r.stride]
}

// shmEnd is one side of a shared-memory mechanism.
type shmEnd struct {
	ctx     context.Context
	in, out *shmRing
	spin    bool
}

// newShmEnd lays the two directions over mem; the parent sends on the
// first.
func newShmEnd(ctx context.Context, mem []byte, size int, parent, spin bool) (*shmEnd, error) {
	if len(mem) < shmRegionSize(size) {
		return nil, fmt.Errorf("shared memory of %d bytes, want %d", len(mem), shmRegionSize(size))
	}
	var rings [2]*shmRing
	for i := range rings {
		d := mem[i*shmDirSize(size) : (i+1)*shmDirSize(size)]
		r := &shmRing{
			head:   (*atomic.Uint64)(unsafe.Pointer(&d[shmHead])),
			tail:   (*atomic.Uint64)(unsafe.Pointer(&d[shmTail])),
			slots:  d[shmCtl:],
			stride: shmStride(size),
			n:      uint64(shmSlots(size)),
		}
		if !spin {
			var err error
			if r.data, err = shm.EventAt(d, shmData); err != nil {
				return nil, err
			}
			if r.space, err = shm.EventAt(d, shmSpace); err != nil {
				return nil, err
			}
		}
		rings[i] = r
	}
	e := &shmEnd{ctx: ctx, out: rings[0], in: rings[1], spin: spin}
	if !parent {
		e.out, e.in = e.in, e.out
	}
	return e, nil
}

// await returns once ready holds. Spinning, it yields the CPU every 1,024
// looks (tens of microseconds), so that both ends on one CPU still make
// progress and, on a loaded machine, a side whose partner was preempted
// lets it run (yielding every 65,536 looks measured a median round trip of
// 220 µs instead of 1.6 µs at a load of 34 on 2 CPUs), and looks at the
// context then. Otherwise it sleeps on ev, which the other side sets
// after changing what ready reads. Clearing ev before the last look means
// a Set after that look wakes the sleep, and a Set before it is seen.
// Before it sleeps it sets wake (when not nil): see Send.
func (e *shmEnd) await(ready func() bool, ev, wake *shm.Event) error {
	for i := 1; !ready(); i++ {
		if ev == nil {
			if i%1024 == 0 {
				if err := e.ctx.Err(); err != nil {
					return context.Cause(e.ctx)
				}
				unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			continue
		}
		ev.Clear()
		if ready() {
			break
		}
		if wake != nil {
			wake.Set()
		}
		if err := ev.Wait(e.ctx); err != nil {
			if c := context.Cause(e.ctx); c != nil {
				return fmt.Errorf("%w (%w)", err, c)
			}
			return err
		}
	}
	return nil
}

func (e *shmEnd) Send(b []byte) error {
	r := e.out
	h := r.head.Load() // only this side writes head
	// Recv wakes a sender waiting for space only once the ring is at most
	// half full. A side that waits for space stops reading what the other
	// side sends it: it wakes that side first, which may be waiting for
	// space with this side's ring more than half full, else both would
	// sleep for ever (both rings in use, as pipelined echoes do).
	if err := e.await(func() bool { return h-r.tail.Load() < r.n }, r.space, e.in.space); err != nil {
		return err
	}
	s := r.slot(h)
	if len(b) > len(s)-shmSlotHdr {
		return fmt.Errorf("message of %d bytes past the %d-byte slot: %w", len(b), len(s)-shmSlotHdr, errTooBig)
	}
	binary.NativeEndian.PutUint64(s, uint64(len(b)))
	copy(s[shmSlotHdr:], b)
	r.head.Store(h + 1) // publishes the slot: the receiver loads head first
	if r.data != nil {
		r.data.Set()
	}
	return nil
}

func (e *shmEnd) Recv(b []byte) error {
	r := e.in
	t := r.tail.Load() // only this side writes tail
	if err := e.await(func() bool { return r.head.Load() != t }, r.data, nil); err != nil {
		return err
	}
	s := r.slot(t)
	n := binary.NativeEndian.Uint64(s)
	if n != uint64(len(b)) {
		return errLength(int(n), len(b))
	}
	copy(b, s[shmSlotHdr:shmSlotHdr+len(b)])
	r.tail.Store(t + 1)
	// A sender waits for space only when the ring is full: wake it once
	// the ring is at most half full, not for every slot freed, so that
	// it wakes once per half ring (and when this side waits for space
	// itself: see Send). It cleared the event before its last look at
	// tail, so either it saw this tail or it gets this Set.
	if r.space != nil && r.head.Load()-(t+1) <= r.n/2 {
		r.space.Set()
	}
	return nil
}

func (e *shmEnd) Close() error { return nil }

// populate faults in every page of mem, writable, before anything is
// timed: madvise(MADV_POPULATE_WRITE) (Linux 5.14), or a write to each
// page where the kernel lacks it. The first side to touch a page of the
// memfd allocates and zeroes it; each side then still has its own page
// table to fill. Without this the first round trips and the first
// throughput batches pay those faults.
func populate(mem []byte) {
	if err := unix.Madvise(mem, unix.MADV_POPULATE_WRITE); err == nil {
		return
	}
	for i := 0; i < len(mem); i += 4096 {
		p := (*atomic.Uint32)(unsafe.Pointer(&mem[i]))
		p.Add(0) // a write that keeps the value: the other side may be there
	}
}

// shmSetup is the parent's half of shm-spin and shm-copy: the region, its
// end, and a watch on the child that cancels the end's context when the
// child exits, so that a parent waiting on shared memory (which gives no
// EOF) does not wait for ever.
func shmSetup(ctx context.Context, name string, size int) (*procSetup, error) {
	r, err := shm.New("ipcplay-bench-"+name, shmRegionSize(size))
	if err != nil {
		return nil, err
	}
	populate(r.Bytes())
	ectx, cancel := context.WithCancelCause(ctx)
	e, err := newShmEnd(ectx, r.Bytes(), size, true, name == "shm-spin")
	if err != nil {
		cancel(nil)
		return nil, errors.Join(err, r.Close())
	}
	on, off := childWatchHooks(cancel)
	return &procSetup{end: e, shmFile: r.File(), onThread: on, offThread: off,
		cleanup: func() error { cancel(nil); return r.Close() },
	}, nil
}

// childWatchHooks returns a procSetup's onThread and offThread for a
// mechanism that learns of its child's exit from a childWatch: on starts
// the watch, which cancels with errChildExited; off stops it.
func childWatchHooks(cancel context.CancelCauseFunc) (on func(pid int) error, off func() error) {
	var w *childWatch
	on = func(pid int) error {
		var err error
		w, err = watchChild(pid, cancel)
		return err
	}
	off = func() error {
		if w == nil {
			return nil
		}
		err := w.stop()
		w = nil
		return err
	}
	return on, off
}

// shmChild is the child's half: it maps the region passed in procs.FDShm.
func shmChild(ctx context.Context, f *os.File, name string, size int) (End, func() error, error) {
	r, err := shm.Open(f, shmRegionSize(size))
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	populate(r.Bytes())
	e, err := newShmEnd(ctx, r.Bytes(), size, false, name == "shm-spin")
	if err != nil {
		return nil, nil, errors.Join(err, r.Close())
	}
	return e, r.Close, nil
}

// errChildExited is the cause a childWatch cancels with.
var errChildExited = errors.New("echo child exited")

// childWatch cancels a context when a process exits: a goroutine polls
// the process's pidfd and an eventfd that stop writes to.
type childWatch struct {
	pidfd, stopfd int
	done          chan struct{}
}

func watchChild(pid int, cancel context.CancelCauseFunc) (*childWatch, error) {
	pidfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	stopfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(pidfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	w := &childWatch{pidfd: pidfd, stopfd: stopfd, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}, {Fd: int32(stopfd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if fds[0].Revents != 0 {
				cancel(fmt.Errorf("pid %d: %w", pid, errChildExited))
			}
			return
		}
	}()
	return w, nil
}

// stop ends the watch and waits for its goroutine.
func (w *childWatch) stop() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, err := unix.Write(w.stopfd, one[:])
	<-w.done
	return errors.Join(os.NewSyscallError("write eventfd", err), unix.Close(w.pidfd), unix.Close(w.stopfd))
}

// copyRingPair is the copy-ring goroutine mechanism: shm-copy's two ends
// over this process's memory, so that the process boundary is the only
// difference between the two.
func copyRingPair(size int) (a, b End, stop func()) {
	mem := shm.Local(shmRegionSize(size))
	ctx, cancel := context.WithCancel(context.Background())
	ea, err := newShmEnd(ctx, mem, size, true, false)
	if err != nil {
		panic("benchlab: copy-ring: " + err.Error()) // the sizes are ours
	}
	eb, err := newShmEnd(ctx, mem, size, false, false)
	if err != nil {
		panic("benchlab: copy-ring: " + err.Error())
	}
	return ea, eb, cancel
}
