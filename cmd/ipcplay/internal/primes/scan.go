package primes

// job is one worker's share of a check.
type job struct {
	n       uint64
	r       Range
	every   uint64 // candidates between two looks at the flags, >= 1
	useFlag bool   // stop when another worker found a divisor
	index   int
}

// scan tries the odd candidates of j.r as divisors of j.n. It is the one
// worker function of the lab: goroutines call it directly, child processes
// call it from their role, and both hand it a board over shared memory.
//
// Every j.every candidates it publishes how many it has tried and looks at
// the flags, so the cost of sharing is one atomic store and two atomic loads
// per block, and a stop is noticed within one block.
func scan(j job, b *board) {
	checked := b.vals.At(b.slot(j.index, slotChecked))
	outcome := Finished
	span := 2 * (j.every - 1)
	n, lo, hi := j.n, j.r.Lo, j.r.Hi
blocks:
	for i := lo; i <= hi; {
		end := hi
		if hi-i > span {
			end = i + span
		}
		for ; i <= end; i += 2 {
			if n%i == 0 {
				checked.Store(int64((i-lo)/2 + 1))
				b.vals.Store(b.slot(j.index, slotFactor), int64(i))
				if b.stop.Set() {
					b.vals.Store(valSetAt, monotonic())
					b.vals.Store(valFactor, int64(i))
					b.vals.Store(valFinder, int64(j.index))
				}
				outcome = Found
				break blocks
			}
		}
		checked.Store(int64((end-lo)/2 + 1))
		if b.abort.IsSet() {
			outcome = Aborted
			break
		}
		if j.useFlag && b.stop.IsSet() && i <= hi {
			outcome = Stopped
			break
		}
	}
	b.vals.Store(b.slot(j.index, slotEnd), monotonic())
	b.vals.Store(b.slot(j.index, slotOutcome), int64(outcome))
}
