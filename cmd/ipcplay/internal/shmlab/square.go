package shmlab

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"

	"ipcplay/procs"
	"ipcplay/shm"
)

// SquareRole is the child role of Square.
const SquareRole = "ipcplay-shm-square"

// MaxSquare bounds how many numbers Square takes.
const MaxSquare = 1 << 20

// SquareResult is what Square's child wrote into shared memory.
type SquareResult struct {
	Numbers []float64
	Squares []float64 // read back from the shared array
	Sum     float64   // read back from the shared value
	PID     int       // the child that did the work
}

// The square region: the input array, the output array, then the sum.
func squareLayout(n int) (offIn, offOut, offSum, size int) {
	offOut = shm.ArraySize(shm.TypeFloat64, n)
	offSum = offOut + shm.ArraySize(shm.TypeFloat64, n)
	size = offSum + shm.ValueSize
	return 0, offOut, offSum, size
}

// Square is Python's multiprocessing example done with processes sharing
// memory: the parent writes nums into a shared array, a child squares each
// into a second shared array and stores their sum in a shared value, and
// the parent reads both back once the child has exited.
func Square(ctx context.Context, nums []float64) (SquareResult, error) {
	if len(nums) == 0 || len(nums) > MaxSquare {
		return SquareResult{}, fmt.Errorf("square: %d numbers, want 1..%d", len(nums), MaxSquare)
	}
	offIn, offOut, offSum, size := squareLayout(len(nums))
	r, err := shm.New("ipcplay-shm-square", size)
	if err != nil {
		return SquareResult{}, err
	}
	defer r.Close()
	in, err := shm.MakeArray[float64](r.Bytes(), offIn, len(nums))
	if err != nil {
		return SquareResult{}, err
	}
	out, err := shm.MakeArray[float64](r.Bytes(), offOut, len(nums))
	if err != nil {
		return SquareResult{}, err
	}
	sum, err := shm.MakeValue[float64](r.Bytes(), offSum)
	if err != nil {
		return SquareResult{}, err
	}
	for i, x := range nums {
		in.Store(i, x)
	}
	c := procs.Command(ctx, SquareRole, strconv.Itoa(len(nums)))
	c.ExtraFiles = []*os.File{nil, r.File()}
	if err := c.Run(); err != nil {
		return SquareResult{}, fmt.Errorf("square: %w", err)
	}
	res := SquareResult{Numbers: nums, Squares: make([]float64, len(nums)), Sum: sum.Load(), PID: c.Pid()}
	for i := range res.Squares {
		res.Squares[i] = out.Load(i)
	}
	return res, nil
}

// squareMain is the entry point of SquareRole: args[0] is the count of
// numbers, which the child checks against the headers it finds.
func squareMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(SquareRole, flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("want one argument, the count of numbers")
	}
	n, err := strconv.Atoi(fs.Arg(0))
	if err != nil || n < 1 || n > MaxSquare {
		return fmt.Errorf("count %q: want 1..%d", fs.Arg(0), MaxSquare)
	}
	offIn, offOut, offSum, size := squareLayout(n)
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "square")
	if err != nil {
		return err
	}
	r, err := shm.Open(f, size)
	if err != nil {
		f.Close()
		return err
	}
	defer r.Close()
	in, err := shm.OpenArray[float64](r.Bytes(), offIn, n)
	if err != nil {
		return err
	}
	out, err := shm.OpenArray[float64](r.Bytes(), offOut, n)
	if err != nil {
		return err
	}
	sum, err := shm.OpenValue[float64](r.Bytes(), offSum)
	if err != nil {
		return err
	}
	var s float64
	for i := range n {
		sq := in.Load(i) * in.Load(i)
		out.Store(i, sq)
		s += sq
	}
	sum.Store(s)
	return nil
}
