package base

import (
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"ipcplay/procs/sysinfo"
)

// Env is what a command talks to: its output streams, and what they are
// connected to. Tests build one over buffers with TestEnv.
type Env struct {
	Stdout, Stderr io.Writer
	// StdoutTTY and StderrTTY report whether the streams are terminals.
	// Progress is drawn only when StderrTTY is set.
	StdoutTTY, StderrTTY bool
	// Width is the number of columns human output must fit: the
	// terminal's width when stdout is one, 80 otherwise.
	Width int
	// Run, when set, is measuring what else the machine did since the
	// command started (steal time, load); the report says so when that
	// disturbed the figures.
	Run *sysinfo.Run
}

// DefaultWidth is the width of human output when stdout is not a terminal.
const DefaultWidth = 80

// OSEnv returns the Env of the process's own streams.
func OSEnv() *Env {
	e := &Env{
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		StdoutTTY: isTerminal(os.Stdout),
		StderrTTY: isTerminal(os.Stderr),
		Width:     DefaultWidth,
	}
	if e.StdoutTTY {
		if ws, err := unix.IoctlGetWinsize(int(os.Stdout.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col >= 40 {
			e.Width = int(ws.Col)
		}
	} else if c, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && c >= 40 && c <= 1000 {
		e.Width = c
	}
	return e
}

// TestEnv returns an Env writing to stdout and stderr, neither a terminal,
// 80 columns wide.
func TestEnv(stdout, stderr io.Writer) *Env {
	return &Env{Stdout: stdout, Stderr: stderr, Width: DefaultWidth}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
