package pipelab

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"ipcplay/procs"
	"ipcplay/shm"
)

// ChildRole is the name of the child role of the lab. Register it with
// [ChildMain] in main and TestMain.
const ChildRole = "ipcplay-pipes-child"

// The progress slots the child publishes in its shared Int64Array.
const (
	slotWritten = 0 // bytes written to the pipe under test
	slotRead    = 1 // bytes read from stdin (echo only)
	slots       = 2
	regionSize  = slots * 8
)

// What the child does, its -do argument.
const (
	doStdout = "stdout" // write -bytes to stdout
	doStderr = "stderr" // a line to stdout, -bytes to stderr, a line to stdout
	doEcho   = "echo"   // copy stdin to stdout
)

// ChildMain is the entry point of [ChildRole]. For -do stderr it expects
// the pipe to use as its stderr at procs.FDExtra and moves it onto fd 2
// (procs keeps a copy of a child's stderr for its error reports, which
// would drain it).
func ChildMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(ChildRole, flag.ContinueOnError)
	do := fs.String("do", doStdout, "stdout, stderr or echo")
	n := fs.Int64("bytes", 0, "bytes to write")
	chunk := fs.Int("chunk", 4096, "bytes per write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *chunk < 1 {
		return fmt.Errorf("chunk %d: want at least 1", *chunk)
	}
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "progress")
	if err != nil {
		return err
	}
	region, err := shm.Open(f, regionSize)
	if err != nil {
		f.Close()
		return fmt.Errorf("map progress: %w", err)
	}
	defer region.Close()
	prog, err := region.Int64s(0, slots)
	if err != nil {
		return err
	}
	buf := make([]byte, *chunk)
	for i := range buf {
		buf[i] = 'a' + byte(i%26)
	}
	switch *do {
	case doStdout:
		return writeN(os.Stdout, *n, buf, prog)
	case doStderr:
		p, err := procs.ChildFile(procs.FDExtra, procs.Pipe, "stderr")
		if err != nil {
			return err
		}
		err = unix.Dup3(int(p.Fd()), 2, 0)
		p.Close()
		if err != nil {
			return fmt.Errorf("dup3 onto stderr: %w", err)
		}
		fmt.Fprintln(os.Stdout, "starting")
		if err := writeN(os.Stderr, *n, buf, prog); err != nil {
			return err
		}
		fmt.Fprintln(os.Stdout, "done")
		return nil
	case doEcho:
		for {
			k, rerr := os.Stdin.Read(buf)
			if k > 0 {
				prog.Add(slotRead, int64(k))
				w, err := os.Stdout.Write(buf[:k])
				prog.Add(slotWritten, int64(w))
				if err != nil {
					return err
				}
			}
			if rerr == io.EOF {
				return nil
			}
			if rerr != nil {
				return rerr
			}
		}
	}
	return fmt.Errorf("-do %q: want stdout, stderr or echo", *do)
}

func writeN(w io.Writer, n int64, buf []byte, prog *shm.Int64Array) error {
	for done := int64(0); done < n; {
		k, err := w.Write(buf[:min(int64(len(buf)), n-done)])
		done += int64(k)
		prog.Store(slotWritten, done)
		if err != nil {
			return err
		}
	}
	return nil
}
