package shmlab

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/ipc"
	"ipcplay/procs"
	"ipcplay/shm"
)

// BenchRole is the child role that receives the bytes in Bench.
const BenchRole = "ipcplay-shm-bench"

// MaxBenchSize bounds Bench's size: the lab holds four buffers of it.
const MaxBenchSize = 1 << 30

// The paths Bench measures.
const (
	PathCopy = "copy" // copy() between two buffers of one process
	PathShm  = "shm"  // the sender copies into a shared byte array the receiver maps
	PathPipe = "pipe" // the sender writes into a pipe, the receiver reads into its buffer
	// PathMsgpack sends MsgpackChunk-byte msgpack values over a Unix
	// socket with ipc.Conn; the receiver decodes and copies them into its
	// buffer.
	PathMsgpack = "msgpack"
)

// MsgpackChunk is the size of one value on PathMsgpack, well under
// ipc.DefaultMaxFrame.
const MsgpackChunk = 1 << 20

// MaxRounds bounds BenchConfig.Rounds.
const MaxRounds = 100

// ctxChunk is how many bytes the bench fills, copies or checksums between
// looks at its context: a few milliseconds of work, so that a cancelled
// run of 1 GiB rounds stops at once, not seconds later. A multiple of 8.
const ctxChunk = 16 << 20

// BenchResult is one path's best round.
type BenchResult struct {
	Path     string
	Bytes    int64
	Rounds   int
	Elapsed  time.Duration   // the fastest round
	Times    []time.Duration // every round, in order
	Verified bool            // every round's checksum matched on the receiving side
	PipeSize int             // the pipe's capacity, for PathPipe
}

// GBps returns the rate of the fastest round in gigabytes (1e9 bytes) per
// second.
func (r BenchResult) GBps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Elapsed.Seconds() / 1e9
}

// BenchConfig describes a Bench run.
type BenchConfig struct {
	Size   int64
	Rounds int // each path runs this many rounds; the fastest is reported
	// Progress, if not nil, is called before each path starts.
	Progress func(path string, index, paths int)
}

// Bench moves cfg.Size bytes from this process to a child through a shared
// array, through a pipe and as msgpack values over a Unix socket, and from
// one buffer to another in this process with copy, the bound set by memory
// bandwidth. A round's time runs from
// the sender's first byte until the bytes are in the receiver's memory and
// it has said so; the receiver then checksums them, untimed, and the
// sender compares. Every round sends different bytes, so stale data cannot
// pass. The copy and shm paths take turns, a copy round right before each
// shm round (see benchCopyShm). The buffers and the shared region are
// faulted in before the first round (the region with
// madvise(MADV_POPULATE_WRITE) on both sides); the fastest round is
// reported.
func Bench(ctx context.Context, cfg BenchConfig) ([]BenchResult, error) {
	if cfg.Size < 1 || cfg.Size > MaxBenchSize {
		return nil, fmt.Errorf("bench: size %d, want 1..%d", cfg.Size, MaxBenchSize)
	}
	if cfg.Rounds < 1 || cfg.Rounds > MaxRounds {
		return nil, fmt.Errorf("bench: %d rounds, want 1..%d", cfg.Rounds, MaxRounds)
	}
	src := make([]byte, cfg.Size)
	if cfg.Progress != nil {
		cfg.Progress(PathCopy+" and "+PathShm, 0, len(benchPaths))
	}
	cp, sh, err := benchCopyShm(ctx, cfg, src)
	out := []BenchResult{cp, sh}
	if err != nil {
		return out, err
	}
	for i, run := range benchPaths {
		if i < 2 {
			continue // copy and shm ran above, taking turns
		}
		if cfg.Progress != nil {
			cfg.Progress(pathNames[i], i, len(benchPaths))
		}
		r, err := run(ctx, cfg, src)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// benchCopyShm runs the copy and shm paths taking turns, a copy round
// right before each shm round, so that each shm round has an in-process
// copy of the same moment to be set against: measured minutes apart on a
// shared machine, the two drifted apart (shm at 0.63x of copy on some
// runs and 0.90x on others).
func benchCopyShm(ctx context.Context, cfg BenchConfig, src []byte) (cp, sh BenchResult, err error) {
	cp = BenchResult{Path: PathCopy, Bytes: cfg.Size, Rounds: cfg.Rounds, Verified: true}
	dst := make([]byte, len(src))
	prefault(dst)
	sh, err = benchChild(ctx, cfg, src, PathShm, sendShm, func(ctx context.Context, round int) error {
		return copyRound(ctx, &cp, dst, src, round)
	})
	return cp, sh, err
}

var (
	benchPaths = []func(context.Context, BenchConfig, []byte) (BenchResult, error){benchCopy, benchShm, benchPipe, benchMsgpack}
	pathNames  = []string{PathCopy, PathShm, PathPipe, PathMsgpack}
)

func benchCopy(ctx context.Context, cfg BenchConfig, src []byte) (BenchResult, error) {
	res := BenchResult{Path: PathCopy, Bytes: cfg.Size, Rounds: cfg.Rounds, Verified: true}
	dst := make([]byte, len(src))
	prefault(dst)
	for round := range cfg.Rounds {
		if err := copyRound(ctx, &res, dst, src, round); err != nil {
			return res, err
		}
	}
	return res, nil
}

// copyRound is one round of the copy path: fill src, time copying it to
// dst, checksum dst.
func copyRound(ctx context.Context, res *BenchResult, dst, src []byte, round int) error {
	want, err := fill(ctx, src, uint64(round)+1)
	if err != nil {
		return fmt.Errorf("bench copy: round %d: %w", round, err)
	}
	t0 := time.Now()
	if err := copyContext(ctx, dst, src); err != nil {
		return fmt.Errorf("bench copy: round %d: %w", round, err)
	}
	res.best(time.Since(t0))
	sum, err := checksum(ctx, dst)
	if err != nil {
		return fmt.Errorf("bench copy: round %d: %w", round, err)
	}
	res.Verified = res.Verified && sum == want
	return nil
}

// prefault writes one byte of each page of b, so that no timed round pays
// for faulting fresh pages in.
func prefault(b []byte) {
	for i := 0; i < len(b); i += 4096 {
		b[i] = 0
	}
}

// populate faults in every page of a shared mapping, writable, with
// madvise(MADV_POPULATE_WRITE) (Linux 5.14); where the kernel lacks it the
// first round pays the faults, as before.
func populate(mem []byte) {
	unix.Madvise(mem, unix.MADV_POPULATE_WRITE)
}

// copyContext is copy(dst, src) in pieces of ctxChunk bytes, stopping
// when ctx is done. The checks cost one atomic load per piece.
func copyContext(ctx context.Context, dst, src []byte) error {
	for off := 0; off < len(src); off += ctxChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		copy(dst[off:], src[off:min(off+ctxChunk, len(src))])
	}
	return nil
}

func (r *BenchResult) best(d time.Duration) {
	r.Times = append(r.Times, d)
	if r.Elapsed == 0 || d < r.Elapsed {
		r.Elapsed = d
	}
}

// The bench region: a control page, then the shared bytes.
const (
	offFilled   = 0  // Semaphore: the sender has written a round (shm path)
	offReceived = 8  // Semaphore: the receiver has the round's bytes
	offChecked  = 16 // Semaphore: the receiver has stored their checksum
	offSum      = 64 // Value[uint64]: the receiver's checksum
	offData     = 4096
)

func benchRegionSize(size int64, path string) int {
	if path == PathShm {
		return offData + shm.ArraySize(shm.TypeBytes, int(size))
	}
	return offData
}

type benchBoard struct {
	filled, received, checked *shm.Semaphore
	sum                       *shm.Value[uint64]
	data                      *shm.Bytes // nil on the pipe path
}

func benchViews(mem []byte, size int64, path string, create bool) (*benchBoard, error) {
	var b benchBoard
	var err error
	if b.filled, err = shm.SemaphoreAt(mem, offFilled); err != nil {
		return nil, err
	}
	if b.received, err = shm.SemaphoreAt(mem, offReceived); err != nil {
		return nil, err
	}
	if b.checked, err = shm.SemaphoreAt(mem, offChecked); err != nil {
		return nil, err
	}
	if create {
		b.sum, err = shm.MakeValue[uint64](mem, offSum)
	} else {
		b.sum, err = shm.OpenValue[uint64](mem, offSum)
	}
	if err != nil {
		return nil, err
	}
	if path == PathShm {
		if create {
			b.data, err = shm.MakeBytes(mem, offData, int(size))
		} else {
			b.data, err = shm.OpenBytes(mem, offData, int(size))
		}
		if err != nil {
			return nil, err
		}
	}
	return &b, nil
}

// transport is what a sender has to reach the receiving child.
type transport struct {
	b    *benchBoard
	w    *os.File  // PathPipe
	conn *ipc.Conn // PathMsgpack
}

func benchShm(ctx context.Context, cfg BenchConfig, src []byte) (BenchResult, error) {
	return benchChild(ctx, cfg, src, PathShm, sendShm, nil)
}

func sendShm(ctx context.Context, t transport, src []byte) error {
	if err := copyContext(ctx, t.b.data.Bytes(), src); err != nil {
		return err
	}
	if err := t.b.filled.Post(); err != nil {
		return fmt.Errorf("post filled: %w", err)
	}
	return nil
}

func benchPipe(ctx context.Context, cfg BenchConfig, src []byte) (BenchResult, error) {
	return benchChild(ctx, cfg, src, PathPipe, func(_ context.Context, t transport, src []byte) error {
		_, err := t.w.Write(src)
		return err
	}, nil)
}

func benchMsgpack(ctx context.Context, cfg BenchConfig, src []byte) (BenchResult, error) {
	return benchChild(ctx, cfg, src, PathMsgpack, func(ctx context.Context, t transport, src []byte) error {
		for off := 0; off < len(src); off += MsgpackChunk {
			if err := t.conn.SendContext(ctx, src[off:min(off+MsgpackChunk, len(src))]); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// benchChild runs the rounds of one path against a receiving child; send
// moves one round's bytes. before, if not nil, runs before each round
// (benchCopyShm's copy round).
func benchChild(ctx context.Context, cfg BenchConfig, src []byte, path string,
	send func(context.Context, transport, []byte) error, before func(context.Context, int) error) (BenchResult, error) {
	res := BenchResult{Path: path, Bytes: cfg.Size, Rounds: cfg.Rounds, Verified: true}
	r, err := shm.New("ipcplay-shm-bench", benchRegionSize(cfg.Size, path))
	if err != nil {
		return res, err
	}
	defer r.Close()
	b, err := benchViews(r.Bytes(), cfg.Size, path, true)
	if err != nil {
		return res, err
	}
	populate(r.Bytes())
	t := transport{b: b}
	files := []*os.File{nil, r.File()}
	switch path {
	case PathPipe:
		pr, pw, err := os.Pipe()
		if err != nil {
			return res, fmt.Errorf("bench pipe: %w", err)
		}
		defer pr.Close()
		defer pw.Close()
		res.PipeSize = growPipe(pw)
		files = append(files, pr)
		t.w = pw
	case PathMsgpack:
		conn, f, err := ipc.Pair(ipc.Stream)
		if err != nil {
			return res, fmt.Errorf("bench msgpack: %w", err)
		}
		defer conn.Close()
		defer f.Close()
		files = append(files, f)
		t.conn = conn
	}
	args := []string{"-path", path, "-size", strconv.FormatInt(cfg.Size, 10), "-rounds", strconv.Itoa(cfg.Rounds)}
	g, err := startGroup(ctx, 1, BenchRole, func(int) []string { return args }, files)
	if err != nil {
		return res, err
	}
	defer g.stop()
	if len(files) > 2 {
		files[2].Close() // the child has its own copy of its end
	}
	if t.w != nil {
		// A write to a pipe whose reader hangs would block past the
		// context: a deadline unblocks it.
		stop := context.AfterFunc(g.ctx, func() { t.w.SetWriteDeadline(time.Now()) })
		defer stop()
	}
	for round := range cfg.Rounds {
		if before != nil {
			if err := before(g.ctx, round); err != nil {
				return res, g.failed(err)
			}
		}
		want, err := fill(g.ctx, src, uint64(round)+1)
		if err != nil {
			return res, g.failed(fmt.Errorf("bench %s: fill round %d: %w", path, round, err))
		}
		t0 := time.Now()
		if err := send(g.ctx, t, src); err != nil {
			return res, g.failed(fmt.Errorf("bench %s: send round %d: %w", path, round, err))
		}
		if err := b.received.Wait(g.ctx); err != nil {
			return res, g.failed(fmt.Errorf("bench %s: wait for round %d: %w", path, round, err))
		}
		res.best(time.Since(t0))
		if err := b.checked.Wait(g.ctx); err != nil {
			return res, g.failed(fmt.Errorf("bench %s: wait for checksum %d: %w", path, round, err))
		}
		res.Verified = res.Verified && b.sum.Load() == want
	}
	return res, g.wait()
}

// growPipe asks for a 1 MiB pipe, the default limit for unprivileged users
// (/proc/sys/fs/pipe-max-size), and returns the capacity it got. It goes
// through SyscallConn, not Fd, to keep the file in non-blocking mode, so
// that its write deadline works.
func growPipe(w *os.File) int {
	rc, err := w.SyscallConn()
	if err != nil {
		return 0
	}
	size := 0
	rc.Control(func(fd uintptr) {
		unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20)
		size, _ = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
	})
	return size
}

// benchMain is the entry point of BenchRole: the receiving side.
func benchMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(BenchRole, flag.ContinueOnError)
	path := fs.String("path", "", "shm, pipe or msgpack")
	size := fs.Int64("size", 0, "bytes per round")
	rounds := fs.Int("rounds", 1, "rounds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size < 1 || *size > MaxBenchSize || (*path != PathShm && *path != PathPipe && *path != PathMsgpack) {
		return fmt.Errorf("bench child: path %q, size %d", *path, *size)
	}
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "bench")
	if err != nil {
		return err
	}
	r, err := shm.Open(f, benchRegionSize(*size, *path))
	if err != nil {
		f.Close()
		return err
	}
	defer r.Close()
	b, err := benchViews(r.Bytes(), *size, *path, false)
	if err != nil {
		return err
	}
	populate(r.Bytes())
	var pipe *os.File
	var conn *ipc.Conn
	var buf, chunk []byte
	switch *path {
	case PathPipe:
		if pipe, err = procs.ChildFile(procs.FDExtra, procs.Pipe, "bench pipe"); err != nil {
			return err
		}
		defer pipe.Close()
	case PathMsgpack:
		f, err := procs.ChildFile(procs.FDExtra, procs.Socket, "bench socket")
		if err != nil {
			return err
		}
		if conn, err = ipc.FileConn(f); err != nil {
			return err
		}
		defer conn.Close()
		chunk = make([]byte, 0, MsgpackChunk)
	}
	if *path != PathShm {
		buf = make([]byte, *size)
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1 // fault the pages in now, not in the first round
		}
	}
	// The parent's SIGTERM ends this process at once; ctx also ends the
	// rounds between pieces when it is cancelled for another reason.
	for range *rounds {
		switch *path {
		case PathPipe:
			if _, err := io.ReadFull(pipe, buf); err != nil {
				return fmt.Errorf("read pipe: %w", err)
			}
		case PathMsgpack:
			for got := 0; got < len(buf); {
				if err := conn.RecvContext(ctx, &chunk); err != nil {
					return fmt.Errorf("receive msgpack: %w", err)
				}
				if len(chunk) > len(buf)-got {
					return fmt.Errorf("receive msgpack: %d bytes past the %d expected", len(chunk)-(len(buf)-got), len(buf))
				}
				got += copy(buf[got:], chunk)
			}
		default:
			if err := b.filled.Wait(ctx); err != nil {
				return err
			}
			buf = b.data.Bytes()
		}
		if err := b.received.Post(); err != nil {
			return fmt.Errorf("post received: %w", err)
		}
		sum, err := checksum(ctx, buf)
		if err != nil {
			return fmt.Errorf("checksum: %w", err)
		}
		b.sum.Store(sum)
		if err := b.checked.Post(); err != nil {
			return fmt.Errorf("post checked: %w", err)
		}
	}
	return nil
}

// fill fills b with bytes from a xorshift generator seeded with seed and
// returns their checksum, computed as it goes. It looks at ctx every
// ctxChunk bytes.
func fill(ctx context.Context, b []byte, seed uint64) (uint64, error) {
	x := seed*0x9e3779b97f4a7c15 | 1
	h := uint64(fnvOffset)
	i := 0
	for i+8 <= len(b) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		for end := min(i+ctxChunk, len(b)&^7); i < end; i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			binary.LittleEndian.PutUint64(b[i:], x)
			h = (h ^ x) * fnvPrime
		}
	}
	for ; i < len(b); i++ {
		b[i] = byte(x >> (8 * (i % 8)))
		h = (h ^ uint64(b[i])) * fnvPrime
	}
	return h, nil
}

const (
	fnvOffset = 0xcbf29ce484222325
	fnvPrime  = 0x100000001b3
)

// checksum is an FNV-style hash over 8-byte words: order-sensitive and
// fast enough to verify a GiB in well under a second. It looks at ctx
// every ctxChunk bytes.
func checksum(ctx context.Context, b []byte) (uint64, error) {
	h := uint64(fnvOffset)
	i := 0
	for i+8 <= len(b) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		for end := min(i+ctxChunk, len(b)&^7); i < end; i += 8 {
			h = (h ^ binary.LittleEndian.Uint64(b[i:])) * fnvPrime
		}
	}
	for ; i < len(b); i++ {
		h = (h ^ uint64(b[i])) * fnvPrime
	}
	return h, nil
}
