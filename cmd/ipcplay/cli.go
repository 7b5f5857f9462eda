//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// A command is one subcommand of ipcplay, shaped like cmd/go's
// base.Command: the command table below is the whole CLI.
type command struct {
	name  string
	short string // one line for "ipcplay help"
	run   func(ctx context.Context, env *env, args []string) error
}

// usageError is a mistake in the command line: it exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// newFlagSet returns a FlagSet for a command that reports errors instead of
// exiting, prints its usage on -h, and accepts --flag as well as -flag.
func newFlagSet(env *env, name, usage, long string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: ipcplay %s\n\n%s\n\nflags:\n", usage, strings.TrimSpace(long))
		fs.PrintDefaults()
	}
	return fs
}

// A subcommand is the word after a command that has several, such as
// "deadlock" in "ipcplay pipes deadlock".
type subcommand struct {
	name string
	run  func(ctx context.Context, env *env, args []string) error
}

// runSubcommand runs the one of subs that args[0] names with the rest of
// args, or prints the command's usage and long help for -h and help.
func runSubcommand(ctx context.Context, env *env, args []string, usage, long string, subs ...subcommand) error {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	want := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	if len(args) == 0 {
		return usagef("missing subcommand: want %s", want)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(env.stdout, "usage: ipcplay %s\n\n%s\n", usage, strings.TrimSpace(long))
		return flag.ErrHelp
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, env, args[1:])
		}
	}
	return usagef("unknown subcommand %q: want %s", args[0], want)
}

// parseFlags parses args, turning a flag error into a usage error, and
// prints the usage to stdout on -h. Flags may follow the positional
// arguments, as in "primes 91 --procs 2".
func parseFlags(env *env, fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		// A negative number is an argument to reject with a clear
		// message, not an unknown flag.
		for len(args) > 0 && isNegativeNumber(args[0]) {
			pos = append(pos, args[0])
			args = args[1:]
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(env.stdout)
				fs.Usage()
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func isNegativeNumber(s string) bool {
	return len(s) > 1 && s[0] == '-' && s[1] >= '0' && s[1] <= '9'
}
