package factor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/procs/pool"
)

// MaxKills bounds --kill: each kill is a map of up to RecoveryTasks
// tasks with a worker replaced, tens of milliseconds.
const MaxKills = 1000

// RecoveryTasks is the most tasks of each map of the recovery phase.
const RecoveryTasks = 20_000

// RecoveryResult is what the recovery phase measured: one map per kill on
// one pool, each with a busy worker SIGKILLed half way.
type RecoveryResult struct {
	Workers int
	Tasks   uint64 // per map: n in 1..Tasks
	Maps    int
	Kills   []pool.Recovery
	// Twice counts results that arrived more than once, Missing tasks
	// whose result never arrived, Failed tasks that failed (none should:
	// a task is blamed once per kill at most).
	Twice, Missing, Failed int
	// WrongSums counts maps whose sum of factors differs from the sieve's.
	WrongSums int
	// Late counts kills not measured: the worker had sent its last
	// results, and the map ended before its death was seen.
	Late int
}

// OK reports whether every map delivered each result exactly once, with
// the right sum.
func (r RecoveryResult) OK() bool {
	return r.Twice == 0 && r.Missing == 0 && r.Failed == 0 && r.WrongSums == 0
}

// MeasureRecovery runs kills maps of 1..min(upto, RecoveryTasks) on a pool
// of workers processes and SIGKILLs a worker holding tasks once half of
// each map's results are in, then measures with pool.RecoveryOf how long
// the pool took to handle the death and to have the dead worker's tasks
// re-done, and checks that every result still came exactly once.
// progress, if not nil, is called after each map.
func MeasureRecovery(ctx context.Context, workers, kills int, upto uint64, progress func(done, total int)) (RecoveryResult, error) {
	res := RecoveryResult{Workers: workers, Tasks: min(upto, RecoveryTasks)}
	if workers < 1 || kills < 1 || res.Tasks < 2 {
		return res, fmt.Errorf("factor recovery: %d workers, %d kills, %d tasks: want at least 1, 1 and 2", workers, kills, res.Tasks)
	}
	p, err := pool.New(ctx, pool.Config{Role: WorkerRole, Workers: workers})
	if err != nil {
		return res, err
	}
	defer p.Close()
	if err := p.Ready(ctx); err != nil {
		return res, fmt.Errorf("factor recovery: start workers: %w", err)
	}
	want := SieveSum(res.Tasks)
	arrived := make([]time.Time, res.Tasks)
	count := make([]int, res.Tasks)
	// A map that ends before a worker could be killed (all idle at the
	// moment) does not count; give up after a few in a row.
	for misses := 0; len(res.Kills) < kills; {
		clear(count)
		var sum uint64
		done := 0
		var k pool.Kill
		killed := false
		var killErr error
		err := pool.MapUnorderedWith(ctx, p, numbers(res.Tasks), pool.MapOptions{Len: int(res.Tasks)},
			func(i int, fs []uint64, err error) error {
				arrived[i] = time.Now()
				count[i]++
				done++
				if err != nil {
					res.Failed++
					return nil
				}
				for _, f := range fs {
					sum += f
				}
				if !killed && killErr == nil && uint64(done) >= res.Tasks/2 {
					k, killed, killErr = p.KillBusy()
				}
				return nil
			})
		if err = errors.Join(err, killErr); err != nil {
			return res, fmt.Errorf("factor recovery: map %d: %w", res.Maps, err)
		}
		res.Maps++
		for _, c := range count {
			switch {
			case c == 0:
				res.Missing++
			case c > 1:
				res.Twice += c - 1
			}
		}
		if sum != want {
			res.WrongSums++
		}
		if !killed {
			if misses++; misses > 3 {
				return res, fmt.Errorf("factor recovery: no worker held tasks half way through %d maps in a row", misses)
			}
			continue
		}
		rec, ok := pool.RecoveryOf(p.Events(), k, func(i int) time.Time { return arrived[i] })
		if !ok {
			// Its last results were on their way when it died, and the map
			// ended before its death was seen (the next map handles it): it
			// held nothing the map waited for, so the kill does not count.
			res.Late++
			if misses++; misses > 3 {
				return res, fmt.Errorf("factor recovery: %d kills in a row landed after the worker's last result", misses)
			}
			continue
		}
		misses = 0
		res.Kills = append(res.Kills, rec)
		if progress != nil {
			progress(len(res.Kills), kills)
		}
	}
	return res, p.Close()
}

// medianMax returns the median and the maximum of ds.
func medianMax(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(ds))
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[len(s)-1]
}

// addRecovery adds the recovery table and its verdict to r.
func addRecovery(r *report.Report, rec RecoveryResult) {
	r.Config["kill"] = len(rec.Kills)
	r.Config["recovery_tasks"] = rec.Tasks
	handled, redone := make([]time.Duration, len(rec.Kills)), make([]time.Duration, len(rec.Kills))
	resent := 0
	for i, k := range rec.Kills {
		handled[i], redone[i] = k.Handled, k.Redone
		resent += k.Resent
	}
	n := int64(len(rec.Kills))
	t := r.Table("recovery", "SIGKILL of a pool worker holding tasks until",
		report.Col("killed", "killed", report.Text),
		report.Col("until", "until", report.Text),
		report.Col("kills", "n", report.Int),
		report.Col("median_ns", "median", report.Millis),
		report.Col("max_ns", "max", report.Millis),
		report.Opt("observed", "the map saw", report.Text, 1),
	)
	hm, hx := medianMax(handled)
	rm, rx := medianMax(redone)
	once := "every result exactly once"
	if !rec.OK() {
		once = fmt.Sprintf("%d twice, %d missing, %d failed", rec.Twice, rec.Missing, rec.Failed)
	}
	t.Row("worker", "reaped, re-queued", n, hm, hx, fmt.Sprintf("%s tasks re-sent", base.Count(int64(resent))))
	t.Row("worker", "its tasks re-done", n, rm, rx, once)
	t.Notef("%d maps of n in 1..%s on %d workers, one SIGKILL each once half the results were in; %d results twice, %d missing, %d failed, %d wrong sums.",
		rec.Maps, base.Count(int64(rec.Tasks)), rec.Workers, rec.Twice, rec.Missing, rec.Failed, rec.WrongSums)
	if rec.Late > 0 {
		t.Notef("%d more kills landed after the worker had sent its last results: not measured.", rec.Late)
	}
	kt := r.Table("recovery_kills", "each kill",
		report.Col("pid", "pid", report.ID),
		report.Col("handled_ns", "handled", report.Millis),
		report.Col("redone_ns", "re-done", report.Millis),
		report.Col("resent", "re-sent", report.Int),
		report.Col("replaced_by", "replaced by", report.ID),
	)
	kt.Detail = true
	for _, k := range rec.Kills {
		kt.Row(k.PID, k.Handled, k.Redone, int64(k.Resent), k.Replacement)
	}
	if !rec.OK() {
		r.Verdictf("FAILED after SIGKILLs: %d results twice, %d missing, %d failed, %d wrong sums", rec.Twice, rec.Missing, rec.Failed, rec.WrongSums)
		return
	}
	r.Verdictf("a SIGKILLed pool worker was reaped and its tasks queued again in a median %s (max %s), and they were re-done by other workers in a median %s (max %s), over %d kills; every result came exactly once",
		base.Human(hm), base.Human(hx), base.Human(rm), base.Human(rx), n)
}
