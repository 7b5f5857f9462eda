package benchlab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
	"ipcplay/shm"
)

// EchoRole is the child role that serves as the echo end of a process
// cell: "ipcplay-bench-echo -mech NAME -size N [-cpu C]", with the
// mechanism's descriptors in slots procs.FDExtra and up (the futex and
// shm mechanisms' memfd in procs.FDShm).
const EchoRole = "ipcplay-bench-echo"

// RegisterRoles registers the lab's child roles with procs.
func RegisterRoles() { procs.Register(EchoRole, EchoMain) }

// EchoMain is EchoRole's entry point.
func EchoMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(EchoRole, flag.ContinueOnError)
	name := fs.String("mech", "", "mechanism")
	size := fs.Int("size", 0, "message size in bytes")
	cpu := fs.Int("cpu", -1, "CPU to pin the echo thread to; -1 leaves it unpinned")
	stream := fs.Int("stream", 0, "write this many bytes in -size writes, for the pipe throughput reference, instead of echoing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size < 1 || *size > 64<<20 {
		return fmt.Errorf("-size %d: want 1 byte to 64 MiB", *size)
	}
	if *stream < 0 || *stream > 1<<30 {
		return fmt.Errorf("-stream %d: want 0 to 1 GiB", *stream)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if *cpu >= 0 {
		if err := pin(*cpu); err != nil {
			return err
		}
	}
	if *stream > 0 {
		return streamMain(*size, *stream)
	}
	e, cleanup, err := childEnd(ctx, *name, *size)
	if err != nil {
		return fmt.Errorf("open %s end: %w", *name, err)
	}
	err = serve(e, *size, true)
	return errors.Join(err, e.Close(), cleanup())
}

// childFD opens descriptor slot fd as a raw, blocking descriptor; the
// returned file must stay referenced while fd is in use.
func childFD(fd int, name string, files *[]*os.File) (int, error) {
	f, err := procs.ChildFile(fd, procs.AnyKind, name)
	if err != nil {
		return -1, err
	}
	*files = append(*files, f)
	return int(f.Fd()), nil // Fd puts it in blocking mode, which is what we want
}

// childEnd opens the child's end of mechanism name from its descriptor
// slots.
func childEnd(ctx context.Context, name string, size int) (End, func() error, error) {
	var files []*os.File
	cleanup := func() error {
		var err error
		for _, f := range files {
			err = errors.Join(err, f.Close())
		}
		return err
	}
	fd := func(slot int) (int, error) { return childFD(slot, name+" slot "+strconv.Itoa(slot), &files) }
	if name == "queue" {
		e, err := queueChild(ctx)
		return e, cleanup, err
	}
	if name == "shm-spin" || name == "shm-copy" || name == "ring" {
		f, err := procs.ChildFile(procs.FDShm, procs.Memfd, name+" region")
		if err != nil {
			return nil, cleanup, err
		}
		if name == "ring" {
			return ringChild(ctx, f, size)
		}
		return shmChild(ctx, f, name, size)
	}
	a, err := fd(procs.FDExtra)
	if err != nil && name != "futex" {
		return nil, cleanup, err
	}
	// The ends below own raw numbers of files kept in files; their Close
	// is a no-op here and cleanup closes the files.
	switch name {
	case "pipe":
		b, err := fd(procs.FDExtra + 1)
		return noClose{&streamEnd{r: a, w: b}}, cleanup, err
	case "unix", "tcp":
		return noClose{&streamEnd{r: a, w: a}}, cleanup, nil
	case "seqpacket", "dgram", "udp":
		return noClose{&dgramEnd{fd: a}}, cleanup, nil
	case "mq":
		b, err := fd(procs.FDExtra + 1)
		return noClose{&mqEnd{r: a, s: b, tmp: make([]byte, size)}}, cleanup, err
	case "eventfd":
		b, err := fd(procs.FDExtra + 1)
		return noClose{&eventEnd{r: a, w: b}}, cleanup, err
	case "futex":
		f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "futex region")
		if err != nil {
			return nil, cleanup, err
		}
		r, err := shm.Open(f, futexRegion)
		if err != nil {
			return nil, cleanup, err
		}
		e, err := futexEnds(ctx, r.Bytes(), false)
		return e, func() error { return errors.Join(r.Close(), cleanup()) }, err
	case "signal":
		e, err := blockSignal()
		if err != nil {
			return nil, cleanup, err
		}
		e.ctx, e.pid = ctx, os.Getppid()
		e.tid, err = tidExchange(a)
		return e, cleanup, err
	}
	return nil, cleanup, fmt.Errorf("unknown mechanism %q", name)
}

// noClose wraps an End whose descriptors someone else closes.
type noClose struct{ End }

func (noClose) Close() error { return nil }

// procSetup is the parent's half of a process mechanism: its end, the
// files the child gets in slots FDExtra and up (handed over), a file for
// FDShm the parent keeps, a hook run on the measuring thread once it is
// locked, and what to close after the child exited.
type procSetup struct {
	end       End
	child     []*os.File
	shmFile   *os.File
	onThread  func(childPID int) error
	offThread func() error // undoes onThread, on the same thread
	cleanup   func() error
	// unblock wakes a Recv of the parent's that would otherwise wait for
	// ever once the child is gone: the parent holds both ends of an
	// eventfd or message queue, so the child's death gives no EOF.
	unblock func()
}

func newFile(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }

// dupFile returns a close-on-exec duplicate of fd as a file, for the child,
// when the parent keeps using fd itself.
func dupFile(fd int, name string) (*os.File, error) {
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	return newFile(d, name), nil
}

// setup builds the parent's half of process mechanism name.
func setup(ctx context.Context, name string, size int) (*procSetup, error) {
	switch name {
	case "pipe":
		var p2c, c2p [2]int
		if err := unix.Pipe2(p2c[:], unix.O_CLOEXEC); err != nil {
			return nil, os.NewSyscallError("pipe2", err)
		}
		if err := unix.Pipe2(c2p[:], unix.O_CLOEXEC); err != nil {
			closeFDs(p2c[0], p2c[1])
			return nil, os.NewSyscallError("pipe2", err)
		}
		return &procSetup{end: &streamEnd{r: c2p[0], w: p2c[1]},
			child: []*os.File{newFile(p2c[0], "pipe r"), newFile(c2p[1], "pipe w")}}, nil
	case "unix", "seqpacket", "dgram":
		typ := map[string]int{"unix": unix.SOCK_STREAM, "seqpacket": unix.SOCK_SEQPACKET, "dgram": unix.SOCK_DGRAM}[name]
		fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, os.NewSyscallError("socketpair", err)
		}
		s := &procSetup{child: []*os.File{newFile(fds[1], name)}}
		if name == "unix" {
			s.end = &streamEnd{r: fds[0], w: fds[0]}
		} else {
			bigBuffers(fds[0], fds[1])
			s.end = &dgramEnd{fd: fds[0]}
		}
		return s, nil
	case "tcp":
		a, b, err := tcpPair()
		if err != nil {
			return nil, err
		}
		return &procSetup{end: &streamEnd{r: a, w: a}, child: []*os.File{newFile(b, "tcp")}}, nil
	case "udp":
		a, b, err := udpPair()
		if err != nil {
			return nil, err
		}
		bigBuffers(a, b)
		return &procSetup{end: &dgramEnd{fd: a}, child: []*os.File{newFile(b, "udp")}}, nil
	case "mq":
		maxmsg := 10
		if n, err := readInt("/proc/sys/fs/mqueue/msg_max"); err == nil {
			maxmsg = min(maxmsg, n)
		}
		p2c, err := mqOpen(size, maxmsg)
		if err != nil {
			return nil, fmt.Errorf("%w (no POSIX message queues here?)", err)
		}
		c2p, err := mqOpen(size, maxmsg)
		if err != nil {
			unix.Close(p2c)
			return nil, err
		}
		s, err := dupSetup(&mqEnd{s: p2c, r: c2p, tmp: make([]byte, size)}, p2c, c2p)
		if s != nil {
			s.unblock = func() { unblockMQ(c2p) }
		}
		return s, err
	case "queue":
		return queueSetup(ctx)
	case "eventfd":
		p2c, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			return nil, os.NewSyscallError("eventfd", err)
		}
		c2p, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			unix.Close(p2c)
			return nil, os.NewSyscallError("eventfd", err)
		}
		s, err := dupSetup(&eventEnd{w: p2c, r: c2p}, p2c, c2p)
		if s != nil {
			s.unblock = func() { unblockEvent(c2p) }
		}
		return s, err
	case "futex":
		r, err := shm.New("ipcplay-bench-futex", futexRegion)
		if err != nil {
			return nil, err
		}
		e, err := futexEnds(ctx, r.Bytes(), true)
		if err != nil {
			return nil, errors.Join(err, r.Close())
		}
		return &procSetup{end: e, shmFile: r.File(), cleanup: r.Close}, nil
	case "shm-spin", "shm-copy":
		return shmSetup(ctx, name, size)
	case "ring":
		return ringSetup(ctx, size)
	case "signal":
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, os.NewSyscallError("socketpair", err)
		}
		s := &procSetup{child: []*os.File{newFile(fds[1], "signal control")}}
		var e *signalEnd
		s.end = endFunc(func() End { return e })
		s.onThread = func(pid int) error {
			var err error
			if e, err = blockSignal(); err != nil {
				return err
			}
			e.ctx, e.pid = ctx, pid
			e.tid, err = tidExchange(fds[0])
			return err
		}
		s.offThread = func() error {
			if e == nil {
				return nil
			}
			return e.Close()
		}
		s.cleanup = func() error { return unix.Close(fds[0]) }
		return s, nil
	}
	return nil, fmt.Errorf("unknown process mechanism %q", name)
}

// endFunc is an End made on the measuring thread, after setup.
type endFunc func() End

func (f endFunc) Send(b []byte) error { return f().Send(b) }
func (f endFunc) Recv(b []byte) error { return f().Recv(b) }
func (f endFunc) Close() error        { return nil } // offThread undoes the thread's mask

// dupSetup hands the child duplicates of the two descriptors the parent
// keeps too (message queues, eventfds: both sides use both).
func dupSetup(e End, a, b int) (*procSetup, error) {
	fa, err := dupFile(a, "a")
	if err != nil {
		return nil, errors.Join(err, e.Close())
	}
	fb, err := dupFile(b, "b")
	if err != nil {
		return nil, errors.Join(err, e.Close(), fa.Close())
	}
	return &procSetup{end: e, child: []*os.File{fa, fb}}, nil
}

// bigBuffers asks for 4 MiB socket buffers (the kernel caps them at
// wmem_max and rmem_max), so that datagrams as large as the buffers allow
// get through.
func bigBuffers(fds ...int) {
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		// A lost UDP datagram would block a receive for ever.
		tv := unix.Timeval{Sec: 10}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
}

var loopback = [4]byte{127, 0, 0, 1}

// tcpPair returns the two ends of a TCP connection over loopback, with
// Nagle's algorithm off.
func tcpPair() (int, int, error) {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, os.NewSyscallError("socket", err)
	}
	defer unix.Close(ln)
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: loopback}); err != nil {
		return -1, -1, os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		return -1, -1, os.NewSyscallError("listen", err)
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		return -1, -1, os.NewSyscallError("getsockname", err)
	}
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, os.NewSyscallError("socket", err)
	}
	if err := unix.Connect(c, sa); err != nil {
		unix.Close(c)
		return -1, -1, os.NewSyscallError("connect", err)
	}
	a, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(c)
		return -1, -1, os.NewSyscallError("accept4", err)
	}
	for _, fd := range []int{a, c} {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	return c, a, nil
}

// udpPair returns two UDP sockets on loopback, each connected to the
// other.
func udpPair() (int, int, error) {
	var fds [2]int
	var names [2]unix.Sockaddr
	for i := range fds {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			if i == 1 {
				unix.Close(fds[0])
			}
			return -1, -1, os.NewSyscallError("socket", err)
		}
		fds[i] = fd
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback}); err != nil {
			closeFDs(fds[0], fds[i])
			return -1, -1, os.NewSyscallError("bind", err)
		}
		if names[i], err = unix.Getsockname(fd); err != nil {
			closeFDs(fds[0], fds[i])
			return -1, -1, os.NewSyscallError("getsockname", err)
		}
	}
	for i := range fds {
		if err := unix.Connect(fds[i], names[1-i]); err != nil {
			closeFDs(fds[0], fds[1])
			return -1, -1, os.NewSyscallError("connect", err)
		}
	}
	return fds[0], fds[1], nil
}

// pin binds the calling thread, which must be locked, to cpu.
func pin(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPU %d: %w", cpu, os.NewSyscallError("sched_setaffinity", err))
	}
	return nil
}
