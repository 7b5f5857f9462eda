package benchlab

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"

	"ipcplay/shm"
)

// The ring mechanism is shm.Ring (package shm's SPSC ring, issue 17): one
// ring per direction in a shared memfd, each message copied into a slot
// by Send and out of it by Recv, a short spin then a futex sleep when a
// side waits. A peer that dies is noticed by the ring itself (it records
// the processes attached to it), and, in the parent, by a childWatch too:
// a child that dies before it attaches is in no record, and the parent
// would wait for it until its context ends.

// ringConfig is each direction's ring for messages of up to size bytes:
// as many slots as shm-copy's, rounded up to a power of two.
func ringConfig(size int) shm.RingConfig {
	slots := 1 << bits.Len(uint(shmSlots(size)-1))
	return shm.RingConfig{Mode: shm.SPSC, Slots: slots, MaxMessage: size}
}

// ringLayout returns the offset of the second ring and the region's size.
func ringLayout(size int) (second, total int, err error) {
	n, err := shm.RingSize(ringConfig(size))
	if err != nil {
		return 0, 0, err
	}
	second = (n + 4095) &^ 4095
	return second, 2 * second, nil
}

// ringEnd is one side: the producer of one ring and the consumer of the
// other.
type ringEnd struct {
	ctx context.Context
	p   *shm.RingProducer
	c   *shm.RingConsumer
}

func (e *ringEnd) Send(b []byte) error { return e.cause(e.p.Send(e.ctx, b)) }

func (e *ringEnd) Recv(b []byte) error {
	got, err := e.c.Recv(e.ctx, b[:0])
	if err != nil {
		return e.cause(err)
	}
	if len(got) != len(b) {
		return errLength(len(got), len(b))
	}
	return nil
}

// cause adds to err why the end's context ended, when it has: the ring
// reports only that it did (context.Canceled), not that the child exited.
func (e *ringEnd) cause(err error) error {
	if err == nil {
		return nil
	}
	if c := context.Cause(e.ctx); c != nil && !errors.Is(err, c) {
		return fmt.Errorf("%w (%w)", err, c)
	}
	return err
}

func (e *ringEnd) Close() error { return errors.Join(e.p.Close(), e.c.Close()) }

// ringEnds attaches to the rings in mem: the parent produces on the first
// and consumes the second, the child the other way round. The parent lays
// the rings out (before the child starts); the child opens them.
func ringEnds(ctx context.Context, mem []byte, size int, parent bool) (*ringEnd, error) {
	second, _, err := ringLayout(size)
	if err != nil {
		return nil, err
	}
	var rs [2]*shm.Ring
	for i, off := range []int{0, second} {
		if parent {
			rs[i], err = shm.MakeRing(mem, off, ringConfig(size))
		} else {
			rs[i], err = shm.OpenRing(mem, off)
		}
		if err != nil {
			return nil, err
		}
	}
	out, in := rs[0], rs[1]
	if !parent {
		out, in = in, out
	}
	p, err := out.Producer(shm.RingOptions{})
	if err != nil {
		return nil, fmt.Errorf("attach ring producer: %w", err)
	}
	c, err := in.Consumer(shm.RingOptions{})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("attach ring consumer: %w", err), p.Close())
	}
	return &ringEnd{ctx: ctx, p: p, c: c}, nil
}

func ringSetup(ctx context.Context, size int) (*procSetup, error) {
	_, total, err := ringLayout(size)
	if err != nil {
		return nil, err
	}
	r, err := shm.New("ipcplay-bench-ring", total)
	if err != nil {
		return nil, err
	}
	populate(r.Bytes())
	ectx, cancel := context.WithCancelCause(ctx)
	e, err := ringEnds(ectx, r.Bytes(), size, true)
	if err != nil {
		cancel(nil)
		return nil, errors.Join(err, r.Close())
	}
	on, off := childWatchHooks(cancel)
	return &procSetup{end: e, shmFile: r.File(), onThread: on, offThread: off,
		cleanup: func() error { cancel(nil); return r.Close() },
	}, nil
}

func ringChild(ctx context.Context, f *os.File, size int) (End, func() error, error) {
	_, total, err := ringLayout(size)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	r, err := shm.Open(f, total)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	populate(r.Bytes())
	e, err := ringEnds(ctx, r.Bytes(), size, false)
	if err != nil {
		return nil, nil, errors.Join(err, r.Close())
	}
	return e, r.Close, nil
}
