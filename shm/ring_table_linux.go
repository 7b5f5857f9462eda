package shm

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// The producer and consumer tables: who is attached, who died, and what
// each live process has claimed (rule 3 of the Ring doc).

// side selects a producer or consumer table with its counters.
type side struct {
	tab             []ringEntry
	ever            *atomic.Uint32
	dead            *atomic.Uint64
	name            string
	waitFor, waking ringQueue
}

func (r *Ring) producers() side {
	return side{r.prods, &r.cnt.everP, &r.cnt.deadP, "producer",
		ringQueue{&r.w.notFull, &r.w.fullWaiters}, ringQueue{&r.w.notEmpty, &r.w.emptyWaiters}}
}

func (r *Ring) consumers() side {
	return side{r.conss, &r.cnt.everC, &r.cnt.deadC, "consumer",
		ringQueue{&r.w.notEmpty, &r.w.emptyWaiters}, ringQueue{&r.w.notFull, &r.w.fullWaiters}}
}

// recReaping marks a table entry's record while a reaper holds the entry
// to drop a dead process's state (see reap): the rest of the word is the
// reaper's own record. Pids are below 2^22, so the bit is free.
const recReaping = 1 << 63

// attach takes a free table entry for this process, or the entry of a dead
// one. onDead runs for a dead entry before it is reused, while the
// caller holds it. An entry that changes under its look (reaped, or taken)
// or that a live reaper holds makes it look again, for up to a wait slice:
// ErrRingBusy means every entry was held by a live process.
func (s side) attach(onDead func(e *ringEntry)) (*ringEntry, error) {
	me := self()
	// ever is set once an entry is ours, never before: a process looking
	// at an empty table must not take "ever" for "gone". One killed
	// between the two stores counts as never attached.
	var deadline time.Time
	for {
		again := false
		for i := range s.tab {
			e := &s.tab[i]
			if e.rec.Load() == 0 {
				if e.rec.CompareAndSwap(0, me) {
					e.intent.Store(0)
					s.ever.Store(1)
					return e, nil
				}
				again = true
			}
		}
		for i := range s.tab {
			e := &s.tab[i]
			rec := e.rec.Load()
			switch {
			case rec == 0:
				again = true
			case recAlive(rec):
				again = again || rec&recReaping != 0
			case e.rec.CompareAndSwap(rec, me):
				s.dead.Add(1)
				if onDead != nil {
					onDead(e)
				}
				e.intent.Store(0)
				s.ever.Store(1)
				return e, nil
			default:
				again = true
			}
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(waitSlice)
		}
		if !again || time.Now().After(deadline) {
			return nil, fmt.Errorf("attach %s: %w (%d entries, all live)", s.name, ErrRingBusy, len(s.tab))
		}
		runtime.Gosched()
	}
}

// detach frees e and wakes the other side, so that it notices at once if
// this was the last one.
func (s side) detach(e *ringEntry) {
	e.intent.Store(0)
	e.rec.Store(0)
	s.waking.wakeAll()
}

// reap drops entries of dead processes and returns how many it dropped.
// onDead runs for each before it is freed, while the caller holds the
// entry under its own record marked recReaping: a process attaching
// meanwhile cannot take the entry and start on state that onDead is still
// dropping (it waits for the entry, or takes another). A reaper killed
// while it holds the entry leaves its own record there, dead in turn.
func (s side) reap(onDead func(e *ringEntry)) int {
	n := 0
	for i := range s.tab {
		e := &s.tab[i]
		rec := e.rec.Load()
		if rec == 0 || recAlive(rec) {
			continue
		}
		if onDead == nil {
			if e.rec.CompareAndSwap(rec, 0) {
				s.dead.Add(1)
				n++
			}
			continue
		}
		if !e.rec.CompareAndSwap(rec, self()|recReaping) {
			continue // taken over or reaped by another process meanwhile
		}
		s.dead.Add(1)
		n++
		onDead(e)
		e.intent.Store(0)
		e.rec.Store(0)
	}
	return n
}

// gone reports whether every process of this side that ever attached has
// detached or been reaped. The table itself is the count: a counter
// beside it could be left wrong by a process killed between the two.
func (s side) gone() bool { return s.ever.Load() != 0 && s.attached() == 0 }

// attached counts the entries held, by live processes or dead ones not yet
// reaped.
func (s side) attached() int {
	n := 0
	for i := range s.tab {
		if s.tab[i].rec.Load() != 0 {
			n++
		}
	}
	return n
}

// liveIntents returns the intents of the live entries. An entry whose
// process lives keeps the intent of its claim until the claim is done
// (rule 3), so a claimed position no live intent covers is abandoned.
func (s side) liveIntents() []uint64 {
	var live []uint64
	for i := range s.tab {
		e := &s.tab[i]
		if rec := e.rec.Load(); rec != 0 && recAlive(rec) {
			live = append(live, e.intent.Load())
		}
	}
	return live
}

func coveredBy(intents []uint64, p uint64) bool {
	for _, in := range intents {
		if covers(in, p) {
			return true
		}
	}
	return false
}
