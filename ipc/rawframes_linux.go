package ipc

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
)

// RawFramesRole is the role of the writer child that RawFrames starts. A
// program that calls RawFrames registers RawFramesMain under this name
// (procs.Register) before it dispatches roles.
const RawFramesRole = "ipc-raw-frames-writer"

// RawFramesConfig sets up one RawFrames run. Zero fields mean the default.
type RawFramesConfig struct {
	Size     int // payload bytes per frame, after a 4-byte length; default 64
	PerWrite int // frames per write(2); default 1, at most 65536
	Messages int // frames in all; default 1,000,000
}

func (c RawFramesConfig) withDefaults() RawFramesConfig {
	if c.Size == 0 {
		c.Size = 64
	}
	if c.PerWrite == 0 {
		c.PerWrite = 1
	}
	if c.Messages == 0 {
		c.Messages = 1_000_000
	}
	return c
}

// RawFramesResult is what RawFrames measured.
type RawFramesResult struct {
	Config  RawFramesConfig
	Elapsed time.Duration // from the start signal until the reader had the last frame
	Reads   int           // read(2) calls of the reader
}

// MsgsPerSec returns frames per second.
func (r RawFramesResult) MsgsPerSec() float64 {
	return float64(r.Config.Messages) / r.Elapsed.Seconds()
}

// RawFrames measures the bare limit of a stream socket between two
// processes: a child writes cfg.Messages length-prefixed frames of
// cfg.Size bytes, cfg.PerWrite frames per write(2), and this process reads
// them into a 256 KiB buffer and walks their lengths; nothing else (no
// queue, no encoding, no flow control beyond the socket's own). Both ends
// use plain blocking system calls on a socketpair whose send buffers are
// sized as the queue's sockets are (streamBuf, 1 MiB where the kernel
// allows it).
func RawFrames(ctx context.Context, cfg RawFramesConfig) (RawFramesResult, error) {
	cfg = cfg.withDefaults()
	res := RawFramesResult{Config: cfg}
	if cfg.Size < 0 || cfg.Size > MaxQueueValue || cfg.PerWrite < 1 || cfg.PerWrite > 65536 || cfg.Messages < 1 {
		return res, fmt.Errorf("raw frames: config %+v out of range", cfg)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return res, fmt.Errorf("raw frames: %w", os.NewSyscallError("socketpair", err))
	}
	sizeStreamBuf(fds[0])
	sizeStreamBuf(fds[1])
	mine := os.NewFile(uintptr(fds[0]), "raw-frames-reader")
	theirs := os.NewFile(uintptr(fds[1]), "raw-frames-writer")
	defer mine.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := procs.Command(ctx, RawFramesRole,
		"-size", strconv.Itoa(cfg.Size), "-per-write", strconv.Itoa(cfg.PerWrite), "-n", strconv.Itoa(cfg.Messages))
	cmd.ExtraFiles = []*os.File{theirs}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return res, fmt.Errorf("raw frames: %w", err)
	}
	// If ctx ends, the child is stopped and the reads below see EOF.
	res.Elapsed, res.Reads, err = readRawFrames(mine, cfg)
	if err != nil {
		cancel()
		cmd.Wait()
		return res, fmt.Errorf("raw frames: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("raw frames: %w", err)
	}
	return res, nil
}

// readRawFrames sends the start byte and reads every frame.
func readRawFrames(f *os.File, cfg RawFramesConfig) (time.Duration, int, error) {
	buf := make([]byte, 256<<10)
	t0 := time.Now()
	if _, err := f.Write([]byte{1}); err != nil {
		return 0, 0, fmt.Errorf("start writer: %w", err)
	}
	got, reads, start, end := 0, 0, 0, 0
	for got < cfg.Messages {
		if start > 0 {
			end = copy(buf, buf[start:end])
			start = 0
		}
		n, err := f.Read(buf[end:])
		reads++
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, reads, fmt.Errorf("read after %d frames: %w", got, err)
		}
		end += n
		for end-start >= 4 {
			l := int(binary.LittleEndian.Uint32(buf[start:]))
			if l != cfg.Size {
				return 0, reads, fmt.Errorf("frame %d: length %d, want %d", got, l, cfg.Size)
			}
			if end-start-4 < l {
				break
			}
			start += 4 + l
			got++
		}
	}
	return time.Since(t0), reads, nil
}

// RawFramesMain is the writer child of RawFrames: it waits for the start
// byte on procs.FDControl, then writes the frames.
func RawFramesMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(RawFramesRole, flag.ContinueOnError)
	size := fs.Int("size", 64, "payload bytes per frame")
	perWrite := fs.Int("per-write", 1, "frames per write")
	n := fs.Int("n", 0, "frames in all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := procs.ChildFile(procs.FDControl, procs.Socket, "raw frames")
	if err != nil {
		return err
	}
	defer f.Close()
	one := make([]byte, 4+*size)
	binary.LittleEndian.PutUint32(one, uint32(*size))
	batch := make([]byte, 0, len(one)**perWrite)
	for range *perWrite {
		batch = append(batch, one...)
	}
	var start [1]byte
	if _, err := io.ReadFull(f, start[:]); err != nil {
		return fmt.Errorf("wait for start: %w", err)
	}
	for left := *n; left > 0; {
		k := min(left, *perWrite)
		if _, err := f.Write(batch[:k*len(one)]); err != nil {
			if errors.Is(err, unix.EPIPE) {
				return nil // the reader gave up
			}
			return fmt.Errorf("write: %w", err)
		}
		left -= k
	}
	return nil
}
