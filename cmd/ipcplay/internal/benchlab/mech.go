package benchlab

import "strings"

// Impl says where a cell's echo end runs.
type Impl string

// The two implementations.
const (
	Process   Impl = "process"   // a re-exec'd child process
	Goroutine Impl = "goroutine" // a goroutine of this process
)

// A Mech is one mechanism of the matrix.
type Mech struct {
	Name  string
	Impl  Impl
	Short string // what it is, for help and notes
	// Notify marks a notification-only mechanism: it carries an 8-byte
	// token, is measured at one size, and has no throughput.
	Notify bool
	// Spins marks a mechanism that busy-waits: with both ends on one CPU
	// it measures the scheduler's time slice.
	Spins bool
	// Quick keeps it in the default (quick) matrix.
	Quick bool
}

// Mechs is the whole matrix's list, process mechanisms first.
var mechs = []Mech{
	{Name: "pipe", Impl: Process, Short: "two pipes, blocking read(2)/write(2)", Quick: true},
	{Name: "unix", Impl: Process, Short: "Unix stream socket pair", Quick: true},
	{Name: "seqpacket", Impl: Process, Short: "Unix seqpacket socket pair", Quick: true},
	{Name: "dgram", Impl: Process, Short: "Unix datagram socket pair", Quick: true},
	{Name: "tcp", Impl: Process, Short: "TCP over loopback, TCP_NODELAY", Quick: true},
	{Name: "udp", Impl: Process, Short: "UDP over loopback", Quick: true},
	{Name: "mq", Impl: Process, Short: "two POSIX message queues (mq_timedsend/mq_timedreceive)", Quick: true},
	{Name: "queue", Impl: Process, Short: "ipc.Queue: msgpack frames over Unix sockets, through the parent's hub", Quick: true},
	{Name: "shm-spin", Impl: Process, Short: "a ring in a shared memfd, both sides spinning on a cache line per direction", Spins: true},
	{Name: "shm-copy", Impl: Process, Short: "a ring in a shared memfd, futex (shm.Event) hand-off", Quick: true},
	{Name: "ring", Impl: Process, Short: "shm.Ring: an SPSC ring per direction in a shared memfd, spin then futex", Quick: true},
	{Name: "eventfd", Impl: Process, Short: "two eventfds: notification only", Notify: true, Quick: true},
	{Name: "futex", Impl: Process, Short: "futex words in a shared memfd (shm.Event): notification only", Notify: true, Quick: true},
	{Name: "signal", Impl: Process, Short: "real-time signal with an 8-byte value (rt_tgsigqueueinfo/rt_sigtimedwait)", Notify: true, Quick: true},
	{Name: "chan", Impl: Goroutine, Short: "unbuffered channel", Quick: true},
	{Name: "chan-buf", Impl: Goroutine, Short: "buffered channel (capacity: the throughput window)", Quick: true},
	{Name: "cond", Impl: Goroutine, Short: "one-slot mailbox, sync.Cond hand-off", Quick: true},
	{Name: "mutex", Impl: Goroutine, Short: "one-slot mailbox, sync.Mutex and Gosched polling", Quick: true},
	{Name: "spin", Impl: Goroutine, Short: "one-slot mailbox, atomic flag spun on", Spins: true, Quick: true},
	{Name: "copy-ring", Impl: Goroutine, Short: "shm-copy's ring and futex hand-off over this process's own memory"},
}

// Mechs returns the matrix's mechanisms, process ones first.
func Mechs() []Mech { return append([]Mech(nil), mechs...) }

// lookupMech returns the mechanism called name.
func lookupMech(name string) (Mech, bool) {
	for _, m := range mechs {
		if m.Name == name {
			return m, true
		}
	}
	return Mech{}, false
}

func mechNames() []string {
	var ns []string
	for _, m := range mechs {
		ns = append(ns, m.Name)
	}
	return ns
}

// notifySize is the one size a notification mechanism is measured at.
const notifySize = 8

// udpMax is the largest UDP payload over IPv4.
const udpMax = 65507

// label is the mechanism's row label: goroutine ones end in "(g)".
func (m Mech) label() string {
	if m.Impl == Goroutine {
		return m.Name + " (g)"
	}
	return m.Name
}

// besides returns the goroutine mechanisms measured right beside a
// process cell of m, for its ratio columns: an unbuffered channel's round
// trip, a buffered channel's throughput, and for shm-copy from 32 KiB the
// same ring in one process (the in-process copy it is set against; below
// that, futex sleeps between goroutines cost more than the copy).
func besides(m Mech, size int) []string {
	if m.Impl != Process || m.Notify {
		return nil
	}
	bs := []string{baseline("p50"), baseline("thr")}
	if m.Name == "shm-copy" && size >= 32<<10 {
		bs = append(bs, "copy-ring")
	}
	return bs
}

// baseline is the goroutine mechanism a process cell is set against:
// the unbuffered channel for round trips, the buffered one for
// throughput.
func baseline(metric string) string {
	if strings.HasPrefix(metric, "thr") {
		return "chan-buf"
	}
	return "chan"
}
