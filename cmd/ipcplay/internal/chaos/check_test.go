package chaos

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ipcplay/ipc"
	"ipcplay/procs"
	"ipcplay/shm"
)

// TestPlan: the plan is the seed's alone, holds exactly the kills asked
// for, and keeps the queue's rules (at most one consumer per iteration,
// each producer once).
func TestPlan(t *testing.T) {
	for _, target := range []string{Pool, Queue, Shm, All} {
		a, b := Plan(5, 300, target), Plan(5, 300, target)
		if len(a) != len(b) {
			t.Fatalf("target=%s: %d iterations, then %d", target, len(a), len(b))
		}
		n := 0
		for i := range a {
			if a[i].Target != b[i].Target || len(a[i].Kills) != len(b[i].Kills) {
				t.Fatalf("target=%s: iteration %d differs: %+v, %+v", target, i, a[i], b[i])
			}
			consumers, producers := 0, map[int]bool{}
			for j, k := range a[i].Kills {
				if k != b[i].Kills[j] {
					t.Errorf("target=%s: kill %d.%d = %v, then %v", target, i, j, k, b[i].Kills[j])
				}
				if target != All && k.Target != target {
					t.Errorf("target=%s: kill on %s", target, k.Target)
				}
				if j > 0 && k.After < a[i].Kills[j-1].After {
					t.Errorf("target=%s: kill %d.%d after %d, before the one before (%d)", target, i, j, k.After, a[i].Kills[j-1].After)
				}
				switch k.Victim {
				case "consumer":
					consumers++
				case "producer":
					if producers[k.Index] {
						t.Errorf("iteration %d kills producer %d twice", i, k.Index)
					}
					producers[k.Index] = true
				}
			}
			if consumers > 1 {
				t.Errorf("iteration %d kills %d consumers", i, consumers)
			}
			n += len(a[i].Kills)
		}
		if n != 300 {
			t.Errorf("target=%s: %d kills planned, want 300", target, n)
		}
	}
	if strings.Join(kills(Plan(5, 50, All)), ",") == strings.Join(kills(Plan(6, 50, All)), ",") {
		t.Error("seeds 5 and 6 plan the same kills")
	}
}

func kills(its []Iteration) []string {
	var s []string
	for _, it := range its {
		for _, k := range it.Kills {
			s = append(s, k.String())
		}
	}
	return s
}

func recs(vals ...uint64) *records {
	return &records{vals: vals}
}

func v(p, s uint64) uint64 { return p<<32 | s }

// TestCheckQueue feeds checkQueue consumers' outputs that break each rule.
func TestCheckQueue(t *testing.T) {
	it := Iteration{Target: Queue, Work: 3}
	all := []uint64{v(0, 0), v(0, 1), v(0, 2), v(1, 0), v(1, 1), v(1, 2)}
	for _, tc := range []struct {
		name     string
		outs     []*records
		prod     []bool
		dead     int
		stranded int
		want     string // "" for a pass
	}{
		{"all-once", []*records{recs(all...), recs(), recs()}, []bool{false, false}, -1, 0, ""},
		{"twice", []*records{recs(all...), recs(v(1, 2)), recs()}, []bool{false, false}, -1, 0, "delivered twice"},
		{"out-of-order", []*records{recs(v(0, 1), v(0, 0), v(0, 2), v(1, 0), v(1, 1), v(1, 2)), recs(), recs()}, []bool{false, false}, -1, 0, "after"},
		{"missing-no-death", []*records{recs(all[:5]...), recs(), recs()}, []bool{false, false}, -1, 0, "no consumer died"},
		{"held-by-dead", []*records{recs(all[:4]...), recs(), recs(v(1, 1))}, []bool{false, false}, 2, 2, ""},
		{"dead-held-fewer", []*records{recs(all[:4]...), recs(), recs()}, []bool{false, false}, 2, 1, "the dead consumer held 1"},
		{"dead-producer", []*records{recs(v(0, 0), v(1, 0), v(1, 1), v(1, 2)), recs(), recs()}, []bool{true, false}, -1, 0, ""},
		{"foreign", []*records{recs(v(0, 7)), recs(), recs()}, []bool{false, false}, -1, 0, "which no producer put"},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			o := newOutcome(it)
			o.checkQueue(it, tc.outs, tc.prod, tc.dead, 4242, ipc.QueueStats{Stranded: tc.stranded})
			switch {
			case tc.want == "" && o.Err != nil:
				t.Errorf("checkQueue: %v, want a pass", o.Err)
			case tc.want != "" && (o.Err == nil || !strings.Contains(o.Err.Error(), tc.want)):
				t.Errorf("checkQueue: %v, want an error naming %q", o.Err, tc.want)
			}
		})
	}
}

// TestLeftovers: a child, an fd, a memfd and a socket file made between
// two snapshots are each reported.
func TestLeftovers(t *testing.T) {
	tmp := t.TempDir()
	warmUp()
	before, err := takeSnapshot(tmp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := procs.Command(ctx, procs.BareRole)
	r, err := shm.New("chaos-leftover-test", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Wait()
	ln, err := net.Listen("unix", filepath.Join(tmp, "left.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	after, err := takeSnapshot(tmp)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, lo := range leftovers(before, after) {
		got[lo.What] = len(lo.Left)
		t.Logf("%s: %q", lo.What, lo.Left)
	}
	if got["child processes"] != 1 || got["memfds"] != 1 || got["open fds"] < 1 || got["socket files"] != 1 {
		t.Errorf("leftovers = %v, want the child, the memfd and its fd, the socket file", got)
	}
}
