package chaos

import (
	"fmt"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
)

type lab struct {
	cfg     Config
	plan    []Iteration
	outs    []Outcome
	left    []leftover
	elapsed time.Duration
}

func status(o Outcome) string {
	switch {
	case o.Hung:
		return "HANG"
	case o.Err != nil:
		return "FAIL"
	}
	return "ok"
}

func (l *lab) report() *report.Report {
	r := report.New("chaos", fmt.Sprintf("chaos: %s SIGKILLs on %s, seed %d", base.Count(int64(l.cfg.Kills)), targetWords(l.cfg.Target), l.cfg.Seed))
	r.Config["kills"] = l.cfg.Kills
	r.Config["seed"] = l.cfg.Seed
	r.Config["target"] = l.cfg.Target
	r.Config["deadline_ns"] = int64(l.cfg.Deadline)
	r.Config["iterations"] = len(l.plan)

	var pt, qt, st *report.Table
	for _, o := range l.outs {
		switch o.Target {
		case Pool:
			if pt == nil {
				pt = r.Table("pool", "pool: a worker SIGKILLed during a map",
					report.Col("iteration", "iter", report.ID),
					report.Col("workers", "workers", report.Int),
					report.Opt("chunk", "chunk", report.Text, 2),
					report.Col("kills", "kills", report.Int),
					report.Opt("deaths", "deaths", report.Int, 1),
					report.Col("results", "exactly once", report.Int),
					report.Col("lost", "lost", report.Int),
					report.Col("took_ns", "took", report.Millis),
					report.Col("status", "status", report.Text),
				)
				pt.Notef("EXACTLY ONCE: tasks whose square came back once; LOST: tasks that failed after %d deaths, each named by the death that failed it; DEATHS: every worker death the pool recorded.", 3)
			}
			chunk := "auto"
			if o.Chunk > 0 {
				chunk = fmt.Sprint(o.Chunk)
			}
			pt.Row(o.N, o.Procs, chunk, o.Made, o.Deaths, o.Results, o.Lost, o.Took, status(o))
		case Queue:
			if qt == nil {
				qt = r.Table("queue", "queue: a producer or consumer SIGKILLed",
					report.Col("iteration", "iter", report.ID),
					report.Opt("window", "window", report.Int, 2),
					report.Opt("capacity", "capacity", report.Int, 3),
					report.Col("kills", "kills", report.Int),
					report.Col("results", "exactly once", report.Int),
					report.Col("lost", "lost", report.Int),
					report.Opt("stranded", "stranded", report.Int, 1),
					report.Col("took_ns", "took", report.Millis),
					report.Col("status", "status", report.Text),
				)
				qt.Notef("%d producers of 500 to %s values each, %d consumers. LOST: values a dead consumer had fetched ahead and never handed on; STRANDED: what the hub counted as handed to dead endpoints (LOST plus what the dead consumer wrote out before it died).", queueProducers, base.Count(6023), queueConsumers)
			}
			qt.Row(o.N, o.Chunk, o.Capacity, o.Made, o.Results, o.Lost, o.Stranded, o.Took, status(o))
		case Shm:
			if st == nil {
				st = r.Table("shm", "shm: a process looping on a shared Mutex SIGKILLed",
					report.Col("iteration", "iter", report.ID),
					report.Col("holders", "holders", report.Int),
					report.Col("kills", "kills", report.Int),
					report.Col("results", "rounds", report.Int),
					report.Col("takeovers", "takeovers", report.Int),
					report.Col("lost", "lost", report.Int),
					report.Col("took_ns", "took", report.Millis),
					report.Col("status", "status", report.Text),
				)
				st.Notef("ROUNDS: lock rounds counted once by the guarded counter and by their holder; TAKEOVERS: locks taken from a dead owner, each naming it; LOST: rounds a holder was killed inside, between its two writes.")
			}
			st.Row(o.N, o.Procs, o.Made, o.Results, o.Takeovers, o.Lost, o.Took, status(o))
		}
	}

	kt := r.Table("kills", "the kill schedule (from the seed) and where each kill went",
		report.Col("iteration", "iter", report.ID),
		report.Col("target", "target", report.Text),
		report.Col("victim", "victim", report.Text),
		report.Col("after", "after", report.Int),
		report.Col("pid", "pid", report.ID),
		report.Col("died", "died", report.Text),
	)
	kt.Detail = true
	for _, o := range l.outs {
		for i, k := range o.Kills {
			var pid any
			died := "missed"
			if o.Fired[i] != 0 {
				pid, died = o.Fired[i], "no"
			}
			if o.Died[i] {
				died = "yes"
			}
			kt.Row(k.Iteration, k.Target, fmt.Sprintf("%s %d", k.Victim, k.Index), k.After, pid, died)
		}
	}
	kt.Notef("AFTER: results delivered (pool), values consumed (queue) or lock rounds (shm) before the kill; a pool victim is the Nth, modulo their number, of the workers started before the map and still alive (those holding chunks, if any).")

	lt := r.Table("leftovers", "left behind, from /proc before and after",
		report.Col("what", "what", report.Text),
		report.Col("before", "before", report.Int),
		report.Col("after", "after", report.Int),
		report.Col("left", "left", report.Int),
	)
	for _, lo := range l.left {
		lt.Row(lo.What, lo.Before, lo.After, len(lo.Left))
		for _, d := range lo.Left {
			r.Warnf("left over: %s", d)
		}
	}
	lt.Notef("child processes of this process (/proc/*/stat), its fds (/proc/self/fd), memfds among them, and socket files in the run's own TMPDIR, which every process it starts inherits.")
	l.verdict(r)
	return r
}

func targetWords(t string) string {
	switch t {
	case Pool:
		return "pool workers"
	case Queue:
		return "queue producers and consumers"
	case Shm:
		return "shm lock holders"
	}
	return "pool workers, queue producers and consumers, and shm lock holders"
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return base.Count(n) + " " + many
}

func (l *lab) verdict(r *report.Report) {
	var made, planned, hangs, failed int
	var results, lost int64
	dead := map[string]map[int]bool{Pool: {}, Queue: {}, Shm: {}}
	lostBy := map[string]int64{}
	for _, o := range l.outs {
		made += o.Made
		planned += len(o.Kills)
		results += o.Results
		lost += o.Lost
		lostBy[o.Target] += o.Lost
		for _, p := range o.LostBy {
			dead[o.Target][p] = true
		}
		if o.Hung {
			hangs++
		} else if o.Err != nil {
			failed++
		}
	}
	left := 0
	for _, lo := range l.left {
		left += len(lo.Left)
	}
	var lostText []string
	for _, t := range []struct{ target, what, who string }{
		{Pool, "tasks", "workers"}, {Queue, "values", "consumers"}, {Shm, "lock rounds", "holders"},
	} {
		if n := lostBy[t.target]; n > 0 {
			lostText = append(lostText, fmt.Sprintf("%s reported lost by %s", plural(n, t.what[:len(t.what)-1], t.what), plural(int64(len(dead[t.target])), "dead "+t.who[:len(t.who)-1], "dead "+t.who)))
		}
	}
	if len(lostText) == 0 {
		lostText = []string{"none lost"}
	}
	landed := "all landed"
	if made < planned {
		landed = fmt.Sprintf("%s landed", base.Count(int64(made)))
	}
	r.Verdictf("%s over %s (%s): %s results exactly once, %s, %s, %s (seed %d)",
		plural(int64(planned), "kill", "kills"), plural(int64(len(l.outs)), "iteration", "iterations"), landed,
		base.Count(results), strings.Join(lostText, ", "),
		plural(int64(hangs), "hang", "hangs"), plural(int64(left), "leftover", "leftovers"), l.cfg.Seed)
	if planned > made {
		r.Verdictf("%s of the %s kills did not land (the victim had finished first, or the map ended before the pool saw the death): the kills table shows which", base.Count(int64(planned-made)), base.Count(int64(planned)))
	}
	if failed > 0 || hangs > 0 || left > 0 {
		r.Verdictf("FAILED: %d iterations failed a check, %d hung, %d things left over; the error says what (seed %d replays the schedule)", failed, hangs, left, l.cfg.Seed)
	}
}
