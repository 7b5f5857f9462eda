package shmlab

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

func squareCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "square [flags] [NUMBER...]",
		Short:     "a child squares a list into a shared array and sums it into a shared value",
		Long: `The classic example of Python's multiprocessing Array and Value: the parent writes the NUMBERs (default 1 to 10) into a shared float64 array, a child process squares each into a second shared array and stores their sum in a shared value, and the parent, once the child has exited, reads both back and checks them against its own arithmetic. Each array and the value carry a header the child checks before touching them.

Examples:
  ipcplay shm square
  ipcplay shm square 3 -2 0.5
  ipcplay shm square --json 1.5 2.5`,
	}
	out := base.AddOutputFlags(&cmd.Flag)
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		var nums []float64
		for _, s := range args {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
				return base.Usagef("%q is not a finite number", s)
			}
			nums = append(nums, x)
		}
		if len(nums) == 0 {
			for i := 1; i <= 10; i++ {
				nums = append(nums, float64(i))
			}
		}
		if len(nums) > MaxSquare {
			return base.Usagef("%s numbers: want at most %s", base.Count(int64(len(nums))), base.Count(MaxSquare))
		}
		res, err := Square(ctx, nums)
		if err != nil {
			return err
		}
		r, bad := squareReport(res)
		if err := report.Write(env, out, r); err != nil {
			return err
		}
		if bad > 0 {
			return fmt.Errorf("%d values read back from shared memory were wrong", bad)
		}
		return nil
	}
	return cmd
}

// squareReport builds the report of a Square run, checking what the child
// wrote against the parent's own arithmetic; bad counts the wrong values.
func squareReport(res SquareResult) (r *report.Report, bad int) {
	r = report.New("shm square", fmt.Sprintf("shm square: child pid %d squared %d numbers in shared memory", res.PID, len(res.Numbers)))
	r.Config["numbers"] = res.Numbers
	// Whole numbers are shown as such; others to three significant
	// digits (--json has them exact).
	unit, cell := report.Int, func(x float64) any { return int64(x) }
	for i, x := range res.Numbers {
		if !whole(x) || !whole(res.Squares[i]) {
			unit, cell = report.Float, func(x float64) any { return x }
		}
	}
	t := r.Table("squares", "the shared arrays",
		report.Col("number", "number", unit),
		report.Col("square", "square (shared array)", unit),
		report.Col("ok", "checked", report.Bool),
	)
	var sum float64
	for i, x := range res.Numbers {
		ok := res.Squares[i] == x*x
		if !ok {
			bad++
		}
		sum += x * x
		t.Row(cell(x), cell(res.Squares[i]), ok)
	}
	if unit == report.Float {
		t.Notef("numbers shown to three significant digits; --json has them exact")
	}
	if res.Sum != sum {
		bad++
		r.Warnf("the shared value holds %s, the parent's own sum is %s", num(res.Sum), num(sum))
	}
	if bad > 0 {
		r.Verdictf("%d values read back from shared memory were WRONG", bad)
		return r, bad
	}
	r.Verdictf("sum (shared value): %s. The child wrote into memory the parent maps; nothing was copied or sent back, and every value matches the parent's own arithmetic", num(res.Sum))
	return r, 0
}

// whole reports whether x is an integer a float64 holds exactly.
func whole(x float64) bool { return x == math.Trunc(x) && math.Abs(x) <= 1<<53 }

func num(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
