package queuelab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/ipc"
)

// MaxKills bounds --kill: each kill is a child started, killed and reaped,
// a few milliseconds.
const MaxKills = 1000

// recoveryUntil says, for each endpoint killed, what the others waited
// for.
var recoveryUntil = map[string]string{
	ipc.RecoverConsumer: "a Join returns",
	ipc.RecoverProducer: "a consumer gets EOF",
}

// measureRecovery kills a consumer and a producer n times each.
func measureRecovery(ctx context.Context, prog *base.Progress, n int) ([]ipc.QueueRecovery, error) {
	var res []ipc.QueueRecovery
	kinds := ipc.QueueRecoveryKinds()
	for i, kind := range kinds {
		prog.Set(float64(i), float64(len(kinds)), "queue: recovery from %d SIGKILLs of a %s", n, kind)
		r, err := ipc.MeasureQueueRecovery(ctx, kind, n)
		if err != nil {
			return nil, err
		}
		res = append(res, r)
	}
	return res, nil
}

// addRecovery adds the recovery tables and their verdict to r.
func addRecovery(r *report.Report, res []ipc.QueueRecovery) {
	if len(res) == 0 {
		return
	}
	r.Config["kill"] = res[0].N
	t := r.Table("recovery", "SIGKILL of a queue endpoint holding values until",
		report.Col("killed", "killed", report.Text),
		report.Col("until", "until", report.Text),
		report.Col("kills", "n", report.Int),
		report.Col("median_ns", "median", report.Millis),
		report.Col("max_ns", "max", report.Millis),
		report.Opt("hub_drop_median_ns", "hub drop", report.Millis, 2),
		report.Opt("lost", "lost", report.Int, 1),
	)
	kt := r.Table("recovery_kills", "each kill",
		report.Col("killed", "killed", report.Text),
		report.Col("kill", "kill", report.Int),
		report.Col("took_ns", "took", report.Millis),
		report.Col("hub_drop_ns", "hub drop", report.Millis),
	)
	kt.Detail = true
	var parts []string
	for _, x := range res {
		drop, _ := medianMax(x.Dropped)
		t.Row(x.Kind, recoveryUntil[x.Kind], int64(x.N), x.Median, x.Max, drop, int64(x.Lost))
		for i, d := range x.Samples {
			kt.Row(x.Kind, int64(i+1), d, x.Dropped[i])
		}
		switch x.Kind {
		case ipc.RecoverConsumer:
			t.Notef("consumer: each held %d values fetched ahead, none marked done; the hub counts them stranded (lost) and done, which lets Join return. Last: %s.", x.Held, x.Observed)
			parts = append(parts, fmt.Sprintf("a dead consumer is dropped by the hub and a Join goes on in a median %s (max %s), the %d values it held reported lost",
				base.Human(x.Median), base.Human(x.Max), x.Held))
		case ipc.RecoverProducer:
			waiting := x.Held * x.N
			t.Notef("producer: each had %d puts waiting for room in a full queue, kept by the hub; the owner waits for it and closes the queue when it ends, and a consumer takes every value the hub took, once and in order, then io.EOF. Of the %s waiting puts, %s got into the queue before the hub dropped their producer and %s were dropped, never acknowledged. Last: %s.",
				x.Held, base.Count(int64(waiting)), base.Count(int64(waiting-x.Lost)), base.Count(int64(x.Lost)), x.Observed)
			parts = append(parts, fmt.Sprintf("after a producer's death a consumer got io.EOF in a median %s (max %s), every value the hub had taken delivered exactly once (%s of its %s waiting puts got in, %s were dropped unacknowledged)",
				base.Human(x.Median), base.Human(x.Max), base.Count(int64(waiting-x.Lost)), base.Count(int64(waiting)), base.Count(int64(x.Lost))))
		}
	}
	t.Notef("HUB DROP is the median time from the SIGKILL until the hub saw the endpoint's socket end and dropped it.")
	r.Verdictf("%s, over %d kills each", strings.Join(parts, "; "), res[0].N)
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
