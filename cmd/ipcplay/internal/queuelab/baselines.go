package queuelab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// QueueRoundTrip times rounds single values of size bytes, each put on one
// queue by this process, got and put back on a second queue by an echo
// child, and got here: one value in flight, every Put and Get waiting for
// the hub (no windows), as a request and its reply would go.
func QueueRoundTrip(ctx context.Context, size, rounds int) (RoundTrip, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ping, err := ipc.NewQueue(1)
	if err != nil {
		return RoundTrip{}, err
	}
	defer ping.Shutdown()
	pong, err := ipc.NewQueue(1)
	if err != nil {
		return RoundTrip{}, err
	}
	defer pong.Shutdown()
	cmd := procs.Command(ctx, EchoRole)
	cmd.Stderr = os.Stderr
	for _, x := range []struct {
		q  *ipc.Queue
		fd int
	}{{ping, procs.FDControl}, {pong, procs.FDExtra}} {
		f, err := x.q.Attach()
		if err != nil {
			return RoundTrip{}, err
		}
		cmd.SetFile(x.fd, f)
	}
	if err := cmd.Start(); err != nil {
		return RoundTrip{}, fmt.Errorf("queue round trip: %w", err)
	}
	// A child that dies ends the pings, which would wait for it for ever.
	pctx, stop := context.WithCancel(ctx)
	waited := make(chan error, 1)
	go func() {
		waited <- cmd.Wait()
		stop()
	}()
	lat, err := pingQueue(pctx, ping, pong, size, rounds)
	ping.Close() // the echo child sees io.EOF and exits
	if werr := <-waited; werr != nil {
		err = werr // the child's failure explains the pings'
	}
	stop()
	if err != nil {
		return RoundTrip{}, fmt.Errorf("queue round trip: %w", err)
	}
	return roundTripOf(lat), nil
}

func pingQueue(ctx context.Context, ping, pong *ipc.Queue, size, rounds int) ([]int64, error) {
	out, err := ping.Client(ipc.QueueOptions{})
	if err != nil {
		return nil, err
	}
	defer out.Close()
	in, err := pong.Client(ipc.QueueOptions{})
	if err != nil {
		return nil, err
	}
	defer in.Close()
	v, got := make([]byte, size), make([]byte, 0, size)
	lat := make([]int64, 0, rounds)
	for i := range warmRounds + rounds {
		t := nanotime()
		if err := out.PutBytes(ctx, v); err != nil {
			return nil, err
		}
		if got, err = in.GetBytes(ctx, got[:0]); err != nil {
			return nil, err
		}
		if i >= warmRounds {
			lat = append(lat, nanotime()-t)
		}
	}
	return lat, nil
}

// echoMain gets values from the queue at procs.FDControl and puts each on
// the queue at procs.FDExtra, until io.EOF.
func echoMain(ctx context.Context, args []string) error {
	fin, err := procs.ChildFile(procs.FDControl, procs.Socket, "ping queue")
	if err != nil {
		return err
	}
	fout, err := procs.ChildFile(procs.FDExtra, procs.Socket, "pong queue")
	if err != nil {
		fin.Close()
		return err
	}
	in, err := ipc.OpenQueue(fin, ipc.QueueOptions{})
	if err != nil {
		fout.Close()
		return err
	}
	defer in.Close()
	out, err := ipc.OpenQueue(fout, ipc.QueueOptions{})
	if err != nil {
		return err
	}
	defer out.Close()
	var v []byte
	for {
		if v, err = in.GetBytes(ctx, v[:0]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("echo: get: %w", err)
		}
		if err := out.PutBytes(ctx, v); err != nil {
			return fmt.Errorf("echo: put: %w", err)
		}
	}
}

// RawPerWrite are the messages per write(2) of the raw socket rows.
var RawPerWrite = []int{1, 16, 256, 4096}

// rawMessages is how many frames the raw socket row at perWrite sends for
// a lab of messages: fewer at one or 16 per write, which go slowly.
func rawMessages(messages, perWrite int) int {
	switch {
	case perWrite == 1:
		return max(1000, messages/20)
	case perWrite < 256:
		return max(1000, messages/4)
	}
	return messages
}

// pythonQueue is the Python baseline: one producer process puts n values
// of size bytes on a multiprocessing.Queue of capacity cap, the main
// process gets them, and prints how many it got and their rate from the
// first to the last.
const pythonQueue = `
import multiprocessing as mp, sys, time
def produce(q, n, size):
    v = b"x" * size
    for _ in range(n):
        q.put(v)
    q.put(None)
if __name__ == "__main__":
    n, size, cap = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    q = mp.Queue(cap)
    p = mp.Process(target=produce, args=(q, n, size))
    p.start()
    get = q.get
    get()
    t0 = time.perf_counter()
    k = 1
    while get() is not None:
        k += 1
    t1 = time.perf_counter()
    p.join()
    print(k, (k - 1) / max(t1 - t0, 1e-9))
`

// pythonDeadline bounds the Python baseline.
const pythonDeadline = 60 * time.Second

// errNoPython is why the Python row is skipped.
var errNoPython = errors.New("python3 not found")

// pythonMessages is how many values the Python row moves for a lab of
// messages: it is the slowest row by far (4,000 to 150,000 a second,
// depending on the load of the machine).
func pythonMessages(messages int) int { return max(1000, min(messages/200, 20_000)) }

// RunPython runs the Python baseline, 1 producer to 1 consumer, and
// returns its messages per second; errNoPython (wrapped) if python3 is
// not on PATH.
func RunPython(ctx context.Context, n, size, capacity int) (float64, error) {
	path, err := exec.LookPath("python3")
	if err != nil {
		return 0, fmt.Errorf("python: %w", errNoPython)
	}
	ctx, cancel := context.WithTimeout(ctx, pythonDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-c", pythonQueue, strconv.Itoa(n), strconv.Itoa(size), strconv.Itoa(capacity))
	// Its own process group, killed whole: the producer is Python's child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("python: no answer within %v: %w", pythonDeadline, context.Cause(ctx))
		}
		return 0, fmt.Errorf("python: %w: %s", err, lastLine(errOut.String()))
	}
	f := strings.Fields(out.String())
	if len(f) != 2 {
		return 0, fmt.Errorf("python: printed %q", out.String())
	}
	got, err1 := strconv.Atoi(f[0])
	rate, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || got != n {
		return 0, fmt.Errorf("python: got %q, want %d values and a rate", out.String(), n)
	}
	return rate, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
