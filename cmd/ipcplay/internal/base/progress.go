package base

import (
	"fmt"
	"sync"
	"time"
	"unicode/utf8"
)

// A Progress is the one status line a running lab draws on stderr. It
// draws only when stderr is a terminal and the output is for a person;
// otherwise every method does nothing. It is safe for concurrent use.
type Progress struct {
	env   *Env
	on    bool
	mu    sync.Mutex
	start time.Time
	last  time.Time
	drawn bool
}

// NewProgress returns the progress line of a command; it is off unless
// stderr is a terminal and on is true (labs pass !out.JSON).
func (e *Env) NewProgress(on bool) *Progress {
	return &Progress{env: e, on: on && e.StderrTTY, start: time.Now()}
}

// Set redraws the line. done and total give the fraction finished, from
// which the time left is estimated; total 0 means unknown. Redraws are
// limited to ten a second.
func (p *Progress) Set(done, total float64, format string, args ...any) {
	if p == nil || !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.drawn && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	line := fmt.Sprintf(format, args...)
	if total > 0 && done > 0 {
		frac := min(done/total, 1)
		left := time.Duration(float64(now.Sub(p.start)) * (1 - frac) / frac)
		line += fmt.Sprintf(" %3.0f%%, %s left", 100*frac, left.Round(time.Second))
	}
	// One column short of the width: a line that fills the last column
	// wraps on some terminals and leaves a stale copy on every redraw.
	if w := p.env.Width - 1; utf8.RuneCountInString(line) > w {
		line = string([]rune(line)[:w-1]) + "…"
	}
	fmt.Fprintf(p.env.Stderr, "\r\x1b[K%s", line)
	p.drawn = true
}

// Restart starts the time-left estimate over, for a new phase.
func (p *Progress) Restart() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.start = time.Now()
	p.mu.Unlock()
}

// Done clears the line.
func (p *Progress) Done() {
	if p == nil || !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.env.Stderr, "\r\x1b[K")
		p.drawn = false
	}
}
