package procs

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// ChildError reports a child that did not exit with status 0.
type ChildError struct {
	Role     string
	Index    int       // position among siblings, or -1
	PID      int       // process id the child had
	ExitCode int       // exit status, or -1 if it was killed by a signal
	Signal   os.Signal // the signal that killed it, or nil
	Stderr   []byte    // the head and tail of what it wrote to stderr
	Err      error     // the error from os/exec
	Cause    error     // why the context was done, if it was and the child died of a signal
}

func (e *ChildError) Error() string {
	var b strings.Builder
	b.WriteString(e.Role)
	if e.Index >= 0 {
		fmt.Fprintf(&b, "[%d]", e.Index)
	}
	fmt.Fprintf(&b, " (pid %d): ", e.PID)
	switch {
	case e.Signal != nil:
		fmt.Fprintf(&b, "killed by signal %v", e.Signal)
	case e.ExitCode == 0:
		// It exited 0, yet Wait failed: its output was still open
		// WaitDelay after it exited (os/exec's ErrWaitDelay).
		fmt.Fprintf(&b, "exit status 0, then %v", e.Err)
	case e.ExitCode > 0:
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	default:
		b.WriteString(e.Err.Error())
	}
	if e.Cause != nil {
		fmt.Fprintf(&b, " after %v", e.Cause)
	}
	if line := lastLine(e.Stderr); line != "" {
		b.WriteString(": ")
		b.WriteString(line)
	}
	return b.String()
}

// Unwrap returns the os/exec error and, if the child's context was done, its
// cause, so that errors.Is(err, context.Canceled) holds for a cancelled child.
func (e *ChildError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

func lastLine(b []byte) string {
	b = bytes.TrimRight(b, "\n\r\t ")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// tailBuffer keeps the first head bytes and the last tail bytes written to
// it, like os/exec's prefixSuffixSaver, so a chatty child cannot make its
// parent hold all of its stderr.
type tailBuffer struct {
	head, tail []byte
	headMax    int
	tailMax    int
	skipped    int64
}

func newTailBuffer(headMax, tailMax int) *tailBuffer {
	return &tailBuffer{headMax: headMax, tailMax: tailMax}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := t.headMax - len(t.head); room > 0 {
		k := min(room, len(p))
		t.head = append(t.head, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	t.tail = append(t.tail, p...)
	if over := len(t.tail) - t.tailMax; over > 0 {
		t.skipped += int64(over)
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	return n, nil
}

// Bytes returns the head, a marker for what was dropped, and the tail.
func (t *tailBuffer) Bytes() []byte {
	if t.skipped == 0 {
		return append(append([]byte(nil), t.head...), t.tail...)
	}
	out := append([]byte(nil), t.head...)
	out = fmt.Appendf(out, "\n... omitting %d bytes ...\n", t.skipped)
	return append(out, t.tail...)
}
