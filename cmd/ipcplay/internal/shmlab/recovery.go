package shmlab

import (
	"context"
	"fmt"
	"strings"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/shm"
)

// MaxKills bounds --kill: each kill is a child started, killed and reaped
// (about 20-40 ms), so 1,000 kills of four primitives take minutes, not
// hours.
const MaxKills = 1000

// recoveryWho names, for each primitive, the process that is killed and
// what a waiter gets then.
var recoveryWho = map[string][2]string{
	shm.RecoverMutex:     {"holder", "OwnerDeadError, lock taken over"},
	shm.RecoverRLock:     {"holder", "OwnerDeadError, lock taken over"},
	shm.RecoverSemaphore: {"holder", "OwnerDeadError, permit taken over"},
	shm.RecoverBarrier:   {"party", "PartyDeadError, barrier broken"},
}

func recoveryCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "recovery [flags]",
		Short:     "how long the others wait when a process holding a shared lock is SIGKILLed",
		Long: `For each process-shared primitive of package shm (Mutex, RLock, Semaphore, Barrier), N times: a child takes it (the mutex, the read-write lock twice, the semaphore's one permit, a place in a barrier of two), this process starts waiting for it, and the child is killed with SIGKILL at a random point of the waiter's sleep. The lab times each kill until the waiter goes on with the error that names the dead process (shm.OwnerDeadError, shm.PartyDeadError), which it checks, and reports the median and the maximum.

A futex waiter is not told that the owner died. It looks at the owner once per wait slice (20 ms), and from the first look on it watches the live owner with a pidfd (pidfd_open(2)), which becomes readable when the process exits and wakes the waiter at once. The times show how fast death is detected, not how fast a lock is; a waiter without pidfds would take up to a slice.

Examples:
  ipcplay shm recovery
  ipcplay shm recovery --kill 20 --kind mutex
  ipcplay shm recovery --kill 50 --json`,
	}
	f := &cmd.Flag
	out := base.AddOutputFlags(f)
	kills := base.IntFlag(f, "kill", 10, 1, MaxKills, "kills of a holder per primitive")
	kind := base.ChoiceFlag(f, "kind", "all", append(shm.RecoveryKinds(), "all"), "the primitive")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		kinds := shm.RecoveryKinds()
		if *kind != "all" {
			kinds = []string{*kind}
		}
		return runRecovery(ctx, env, out, kinds, *kills)
	}
	return cmd
}

func runRecovery(ctx context.Context, env *base.Env, out *base.Output, kinds []string, kills int) error {
	prog := env.NewProgress(!out.JSON)
	defer prog.Done()
	var res []shm.Recovery
	for i, k := range kinds {
		prog.Set(float64(i), float64(len(kinds)), "shm recovery: killing %d %s %ss", kills, k, recoveryWho[k][0])
		r, err := shm.MeasureRecovery(ctx, k, kills)
		if err != nil {
			return err
		}
		res = append(res, r)
	}
	prog.Done()
	return report.Write(env, out, RecoveryReport(res))
}

// RecoveryReport builds the report of measured recoveries: a table
// "recovery" with a row per primitive (n, median, max, what the waiter
// got) and a verdict in words.
func RecoveryReport(res []shm.Recovery) *report.Report {
	n := 0
	if len(res) > 0 {
		n = res[0].N
	}
	r := report.New("shm recovery", fmt.Sprintf("shm recovery: %d SIGKILLs of a holder per primitive", n))
	r.Config["kill"] = n
	kinds := []string{}
	for _, x := range res {
		kinds = append(kinds, x.Kind)
	}
	r.Config["kinds"] = kinds
	AddRecoveryTable(r, res)
	var parts []string
	for _, x := range res {
		parts = append(parts, fmt.Sprintf("a dead %s %s is detected in a median %s (max %s)",
			x.Kind, recoveryWho[x.Kind][0], base.Human(x.Median), base.Human(x.Max)))
	}
	if len(parts) > 0 {
		r.Verdictf("%s, over %d kills each; every waiter got the error naming the dead process", strings.Join(parts, "; "), n)
	}
	return r
}

// AddRecoveryTable adds the table "recovery" of res to r.
func AddRecoveryTable(r *report.Report, res []shm.Recovery) {
	t := r.Table("recovery", "SIGKILL of a holder until a waiter goes on",
		report.Col("primitive", "primitive", report.Text),
		report.Col("killed", "killed", report.Text),
		report.Col("kills", "n", report.Int),
		report.Col("median_ns", "median", report.Millis),
		report.Col("max_ns", "max", report.Millis),
		report.Opt("observed", "the waiter got", report.Text, 1),
	)
	for _, x := range res {
		who := recoveryWho[x.Kind]
		t.Row(x.Kind, who[0], int64(x.N), x.Median, x.Max, who[1])
	}
	for _, x := range res {
		if x.Observed != "" {
			t.Notef("%s, last kill: %q", x.Kind, x.Observed)
		}
	}
	st := r.Table("recovery_kills", "each kill",
		report.Col("primitive", "primitive", report.Text),
		report.Col("kill", "kill", report.Int),
		report.Col("took_ns", "took", report.Millis),
	)
	st.Detail = true
	for _, x := range res {
		for i, d := range x.Samples {
			st.Row(x.Kind, int64(i+1), d)
		}
	}
	t.Notef("Each time runs from the SIGKILL to the waiter's return; the holder is killed at a random point of the waiter's 20 ms wait slice, after the waiter started watching it with a pidfd.")
}
