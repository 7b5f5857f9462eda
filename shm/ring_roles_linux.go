package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
)

// Child roles over a ring, for tests, benchmarks and labs. The parent
// makes a [Region], lays rings (and, for consumers that check delivery, a
// seen bitmap) in it, passes it at procs.FDShm and starts the role with
// the flags below; each role prints one result line to stdout. Consumers
// end at io.EOF, once every producer that attached is gone: a parent that
// starts several producers holds a producer of its own (Ring.Producer)
// until they are all done, or a fast one may end the stream for all. A program
// that uses them registers each with procs.Register(RoleX, RingXMain).
const (
	// RoleRingProducer sends -count stamped messages (0: until killed) of
	// -msg bytes, -batch at a time, as producer -id, then closes.
	RoleRingProducer = "ipcplay-shm-ring-producer"
	// RoleRingConsumer receives until EOF (or -count messages), checks
	// every stamp, marks message seq of producer id as bit id*per+seq of
	// the bitmap of -producers*-per bits at -seen, and
	// prints "received=N torn=T dup=D tombstones=X futex=F".
	RoleRingConsumer = "ipcplay-shm-ring-consumer"
	// RoleRingEcho receives from the ring at -in and sends each message
	// back on the ring at -out, -rounds times.
	RoleRingEcho = "ipcplay-shm-ring-echo"
	// RoleBareProducer sends -count messages into the bare ring at the
	// region's start.
	RoleBareProducer = "ipcplay-shm-bare-producer"
)

// StampSize is the smallest message the stamping roles send.
const StampSize = 24

const stampKey = 0x9E3779B97F4A7C15

// Stamp fills msg (at least StampSize bytes) as message seq of producer
// id: id, length and seq up front, a checksum word at the end, and filler
// derived from seq between, so that [CheckStamp] finds a message torn
// anywhere.
func Stamp(msg []byte, id uint32, seq uint64) {
	binary.LittleEndian.PutUint32(msg, id)
	binary.LittleEndian.PutUint32(msg[4:], uint32(len(msg)))
	binary.LittleEndian.PutUint64(msg[8:], seq)
	f := byte(seq*7) ^ byte(id)
	for i := 16; i < len(msg)-8; i++ {
		msg[i] = f
	}
	binary.LittleEndian.PutUint64(msg[len(msg)-8:], seq^stampKey^uint64(id))
}

// ErrTorn is returned by CheckStamp for a message that is not what Stamp
// wrote: a torn or corrupt message.
var ErrTorn = errors.New("torn message")

// CheckStamp returns the producer id and sequence of a stamped message.
func CheckStamp(msg []byte) (uint32, uint64, error) {
	if len(msg) < StampSize || binary.LittleEndian.Uint32(msg[4:]) != uint32(len(msg)) {
		return 0, 0, fmt.Errorf("check %d-byte message: %w", len(msg), ErrTorn)
	}
	id := binary.LittleEndian.Uint32(msg)
	seq := binary.LittleEndian.Uint64(msg[8:])
	if binary.LittleEndian.Uint64(msg[len(msg)-8:]) != seq^stampKey^uint64(id) {
		return 0, 0, fmt.Errorf("check message %d/%d: %w", id, seq, ErrTorn)
	}
	f := byte(seq*7) ^ byte(id)
	for _, b := range msg[16 : len(msg)-8] {
		if b != f {
			return 0, 0, fmt.Errorf("check message %d/%d filler: %w", id, seq, ErrTorn)
		}
	}
	return id, seq, nil
}

// SeenBits is a bitmap in shared memory, one bit per message, set
// atomically by consumers so that duplicates are found across processes.
type SeenBits struct {
	w []atomic.Uint64
}

// SeenSize returns the bytes a bitmap of n bits takes.
func SeenSize(n int) int { return (n + 63) / 64 * 8 }

// SeenAt returns the bitmap of n bits at byte offset off of mem (8-byte
// aligned).
func SeenAt(mem []byte, off, n int) (*SeenBits, error) {
	p, err := wordAt(mem, off, max(SeenSize(n), 8))
	if err != nil || uintptr(p)%8 != 0 {
		return nil, fmt.Errorf("seen bitmap at %d: %w", off, errors.Join(err, errors.New("want 8-byte alignment")))
	}
	return &SeenBits{w: unsafe.Slice((*atomic.Uint64)(p), (n+63)/64)}, nil
}

// Mark sets bit i and reports whether it was clear.
func (s *SeenBits) Mark(i uint64) bool {
	m := uint64(1) << (i % 64)
	return s.w[i/64].Or(m)&m == 0
}

// Count returns the bits set.
func (s *SeenBits) Count() int {
	n := 0
	for i := range s.w {
		w := s.w[i].Load()
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

type roleFlags struct {
	fs                             *flag.FlagSet
	size, off, in, out, msg, batch int
	spin, seen, cpu, slots, nprod  int
	id                             uint
	stamp                          bool
	count, per, rounds, stall      uint64
}

func parseRoleFlags(name string, args []string) (*roleFlags, error) {
	f := &roleFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.IntVar(&f.size, "size", 0, "region size in bytes")
	f.fs.IntVar(&f.off, "off", 0, "ring offset in the region")
	f.fs.IntVar(&f.in, "in", 0, "offset of the ring to receive from")
	f.fs.IntVar(&f.out, "out", 0, "offset of the ring to send to")
	f.fs.IntVar(&f.msg, "msg", 64, "message size in bytes")
	f.fs.IntVar(&f.batch, "batch", 32, "messages per send or receive call")
	f.fs.IntVar(&f.spin, "spin", 0, "polls before sleeping (RingOptions.Spin)")
	f.fs.IntVar(&f.seen, "seen", -1, "offset of the seen bitmap, -1 for none")
	f.fs.IntVar(&f.cpu, "cpu", -1, "pin the role's thread to this CPU")
	f.fs.IntVar(&f.slots, "slots", 1024, "bare ring slots")
	f.fs.IntVar(&f.nprod, "producers", 1, "producers, for the seen bitmap size")
	f.fs.UintVar(&f.id, "id", 0, "producer id")
	f.fs.BoolVar(&f.stamp, "stamp", true, "stamp every message; false sends the sequence number alone, for speed")
	f.fs.Uint64Var(&f.count, "count", 0, "messages to send or receive, 0 for all")
	f.fs.Uint64Var(&f.per, "per", 0, "messages per producer, for the seen bitmap index")
	f.fs.Uint64Var(&f.rounds, "rounds", 0, "round trips to echo")
	f.fs.Uint64Var(&f.stall, "stall", 0, "consumer: stop for good inside the callback of message N (1-based), holding its batch, to be killed")
	if err := f.fs.Parse(args); err != nil {
		return nil, err
	}
	return f, nil
}

// roleRegion maps the region the role inherited at procs.FDShm and pins
// the calling goroutine's thread if -cpu asks. The returned function undoes
// both.
func (f *roleFlags) region() (*Region, func() error, error) {
	file, err := procs.ChildFile(procs.FDShm, procs.Memfd, "ring region")
	if err != nil {
		return nil, nil, err
	}
	r, err := Open(file, f.size)
	if err != nil {
		file.Close()
		return nil, nil, err
	}
	if f.cpu >= 0 {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(f.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			r.Close()
			return nil, nil, fmt.Errorf("pin to cpu %d: %w", f.cpu, err)
		}
	}
	return r, r.Close, nil
}

// RingProducerMain is the entry point of RoleRingProducer.
func RingProducerMain(ctx context.Context, args []string) error {
	f, err := parseRoleFlags(RoleRingProducer, args)
	if err != nil {
		return err
	}
	if f.stamp && f.msg < StampSize || f.msg < 8 {
		return fmt.Errorf("message size %d: want at least %d", f.msg, StampSize)
	}
	reg, done, err := f.region()
	if err != nil {
		return err
	}
	defer done()
	ring, err := OpenRing(reg.Bytes(), f.off)
	if err != nil {
		return err
	}
	p, err := ring.Producer(RingOptions{Spin: f.spin, Batch: f.batch})
	if err != nil {
		return err
	}
	batch := make([][]byte, max(f.batch, 1))
	buf := make([]byte, len(batch)*f.msg)
	for i := range batch {
		batch[i] = buf[i*f.msg : (i+1)*f.msg]
	}
	var seq uint64
	for f.count == 0 || seq < f.count {
		n := len(batch)
		if f.count != 0 {
			n = int(min(uint64(n), f.count-seq))
		}
		for i := range n {
			if f.stamp {
				Stamp(batch[i], uint32(f.id), seq+uint64(i))
			} else {
				binary.LittleEndian.PutUint64(batch[i], seq+uint64(i))
			}
		}
		sent, err := p.SendBatch(ctx, batch[:n])
		seq += uint64(sent)
		if err != nil {
			return fmt.Errorf("producer %d after %d messages: %w", f.id, seq, err)
		}
	}
	c := p.Counters()
	if err := p.Close(); err != nil {
		return err
	}
	fmt.Printf("sent=%d futex=%d\n", seq, c.FutexWaits+c.FutexWakes)
	return nil
}

// RingConsumerMain is the entry point of RoleRingConsumer.
func RingConsumerMain(ctx context.Context, args []string) error {
	f, err := parseRoleFlags(RoleRingConsumer, args)
	if err != nil {
		return err
	}
	reg, done, err := f.region()
	if err != nil {
		return err
	}
	defer done()
	ring, err := OpenRing(reg.Bytes(), f.off)
	if err != nil {
		return err
	}
	var seen *SeenBits
	if f.seen >= 0 {
		if seen, err = SeenAt(reg.Bytes(), f.seen, f.nprod*int(f.per)); err != nil {
			return err
		}
	}
	c, err := ring.Consumer(RingOptions{Spin: f.spin})
	if err != nil {
		return err
	}
	var got, torn, dup uint64
	check := func(m []byte) {
		got++
		id, seq, err := CheckStamp(m)
		if err != nil {
			torn++
			return
		}
		if seen != nil && !seen.Mark(uint64(id)*f.per+seq) {
			dup++
		}
		if got == f.stall {
			time.Sleep(time.Hour) // not a channel: the runtime would call it a deadlock
		}
	}
	for f.count == 0 || got < f.count {
		if _, err := c.RecvBatch(ctx, f.batch, check); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
	}
	cn := c.Counters()
	if err := c.Close(); err != nil {
		return err
	}
	fmt.Printf("received=%d torn=%d dup=%d tombstones=%d futex=%d\n", got, torn, dup, cn.Tombstones, cn.FutexWaits+cn.FutexWakes)
	return nil
}

// RingEchoMain is the entry point of RoleRingEcho.
func RingEchoMain(ctx context.Context, args []string) error {
	f, err := parseRoleFlags(RoleRingEcho, args)
	if err != nil {
		return err
	}
	reg, done, err := f.region()
	if err != nil {
		return err
	}
	defer done()
	in, err := OpenRing(reg.Bytes(), f.in)
	if err != nil {
		return err
	}
	out, err := OpenRing(reg.Bytes(), f.out)
	if err != nil {
		return err
	}
	opt := RingOptions{Spin: f.spin}
	c, err := in.Consumer(opt)
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := out.Producer(opt)
	if err != nil {
		return err
	}
	defer p.Close()
	buf := make([]byte, 0, in.MaxMessage())
	for i := uint64(0); f.rounds == 0 || i < f.rounds; i++ {
		buf, err = c.Recv(ctx, buf[:0])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := p.Send(ctx, buf); err != nil {
			return err
		}
	}
	cc, pc := c.Counters(), p.Counters()
	fmt.Printf("futex=%d\n", cc.FutexWaits+cc.FutexWakes+pc.FutexWaits+pc.FutexWakes)
	return nil
}

// BareProducerMain is the entry point of RoleBareProducer.
func BareProducerMain(ctx context.Context, args []string) error {
	f, err := parseRoleFlags(RoleBareProducer, args)
	if err != nil {
		return err
	}
	reg, done, err := f.region()
	if err != nil {
		return err
	}
	defer done()
	b, err := BareRingAt(reg.Bytes(), f.slots)
	if err != nil {
		return err
	}
	var msg [BareSlot]byte
	b.Send(f.count, &msg)
	return nil
}
