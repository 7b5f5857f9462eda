package base

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"syscall"

	"ipcplay/procs/sysinfo"
)

// A Command is one ipcplay command or subcommand, shaped like cmd/go's
// base.Command.
type Command struct {
	// Run runs the command with the arguments left after its flags. The
	// FlagSet has been parsed already. A *UsageError return exits 2.
	// Run is nil for a command that only holds subcommands.
	Run func(ctx context.Context, env *Env, args []string) error

	// UsageLine is the one-line usage, starting with the command's path
	// after "ipcplay", as "primes [flags] [NUMBER...]".
	UsageLine string
	// Short is the one line shown in "ipcplay help".
	Short string
	// Long is the help text: what the command does, then examples. It is
	// wrapped to the terminal's width except for lines that start with
	// a space, which are printed as they are.
	Long string

	// Flag holds the command's own flags.
	Flag flag.FlagSet

	// Commands are the subcommands, as "deadlock" under "pipes".
	Commands []*Command

	parent *Command
}

// Name is the command's last word: "deadlock" for "pipes deadlock".
func (c *Command) Name() string {
	name, _, _ := strings.Cut(c.UsageLine, " ")
	return name
}

// Path is the command's words after "ipcplay": "pipes deadlock".
func (c *Command) Path() string {
	if c.parent == nil || c.parent.parent == nil {
		return c.Name()
	}
	return c.parent.Path() + " " + c.Name()
}

// lookup returns the subcommand called name.
func (c *Command) lookup(name string) *Command {
	for _, s := range c.Commands {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

func (c *Command) link() {
	for _, s := range c.Commands {
		s.parent = c
		s.link()
	}
}

// A UsageError is a mistake in the command line: the command exits 2 and
// prints it as one line.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Interrupt is the cause a context carries when a signal ended it; main's
// signal handling cancels its context with one.
type Interrupt struct{ Signal syscall.Signal }

func (i *Interrupt) Error() string {
	switch i.Signal {
	case syscall.SIGINT:
		return "interrupted (Ctrl-C, SIGINT)"
	case syscall.SIGTERM:
		return "interrupted (SIGTERM)"
	}
	return "interrupted (" + i.Signal.String() + ")"
}

// Interrupted reports the signal that ended ctx, if one did.
func Interrupted(ctx context.Context) (syscall.Signal, bool) {
	var in *Interrupt
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &in) {
		return in.Signal, true
	}
	return 0, false
}

// Program describes the whole CLI: the program's name, its one-line
// description, and the table of top-level commands.
type Program struct {
	Name     string
	Short    string
	Commands []*Command
	// Version is printed by --version and the version command.
	Version func() string
}

// Main runs the program with args (without the program's own name) and
// returns the exit status.
func (p *Program) Main(ctx context.Context, env *Env, args []string) int {
	root := &Command{UsageLine: p.Name, Short: p.Short, Commands: p.Commands}
	root.link()
	if len(args) == 0 {
		p.usage(env.Stderr, env.Width)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		if len(args) > 1 {
			return p.help(env, root, args[1:])
		}
		p.usage(env.Stdout, env.Width)
		return 0
	case "help":
		return p.help(env, root, args[1:])
	case "--version", "-version", "version":
		fmt.Fprintln(env.Stdout, p.Version())
		return 0
	case "completion":
		if len(args) != 2 {
			fmt.Fprintf(env.Stderr, "%s completion: want one shell: bash, zsh or fish\n", p.Name)
			return 2
		}
		if err := p.completion(env.Stdout, root, args[1]); err != nil {
			fmt.Fprintf(env.Stderr, "%s completion: %v\n", p.Name, err)
			return 2
		}
		return 0
	case "man":
		p.man(env.Stdout, root)
		return 0
	}
	cmd, rest, code := p.find(env, root, args)
	if cmd == nil {
		return code
	}
	return p.run(ctx, env, cmd, rest)
}

// find walks args down the command tree to the command they name.
func (p *Program) find(env *Env, root *Command, args []string) (*Command, []string, int) {
	cmd := root
	for len(args) > 0 && len(cmd.Commands) > 0 {
		word := args[0]
		if word == "-h" || word == "-help" || word == "--help" || word == "help" {
			if cmd == root {
				break
			}
			p.printHelp(env.Stdout, env.Width, cmd)
			return nil, nil, 0
		}
		sub := cmd.lookup(word)
		if sub == nil {
			p.unknown(env, cmd, word)
			return nil, nil, 2
		}
		cmd, args = sub, args[1:]
	}
	if cmd.Run == nil {
		fmt.Fprintf(env.Stderr, "%s %s: missing subcommand: want %s (see '%s %s -h')\n",
			p.Name, cmd.Path(), names(cmd.Commands), p.Name, cmd.Path())
		return nil, nil, 2
	}
	return cmd, args, 0
}

func (p *Program) unknown(env *Env, parent *Command, word string) {
	what, where := "command", p.Name
	if parent.parent != nil {
		what, where = "subcommand", p.Name+" "+parent.Path()
	}
	var cands []string
	for _, c := range parent.Commands {
		cands = append(cands, c.Name())
	}
	msg := fmt.Sprintf("%s: unknown %s %q", where, what, word)
	if s := Suggest(word, cands); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += "; want " + names(parent.Commands)
	}
	fmt.Fprintf(env.Stderr, "%s (see '%s -h')\n", msg, where)
}

func names(cmds []*Command) string {
	var ns []string
	for _, c := range cmds {
		ns = append(ns, c.Name())
	}
	if len(ns) == 1 {
		return ns[0]
	}
	return strings.Join(ns[:len(ns)-1], ", ") + " or " + ns[len(ns)-1]
}

// help is "ipcplay help WORDS...": the help of the command they name.
func (p *Program) help(env *Env, root *Command, words []string) int {
	cmd := root
	for _, w := range words {
		if strings.HasPrefix(w, "-") || w == "help" {
			continue // "help -h", "help help": the general help
		}
		sub := cmd.lookup(w)
		if sub == nil {
			p.unknown(env, cmd, w)
			return 2
		}
		cmd = sub
	}
	if cmd == root {
		p.usage(env.Stdout, env.Width)
		return 0
	}
	p.printHelp(env.Stdout, env.Width, cmd)
	return 0
}

// run parses cmd's flags and runs it, turning its error into an exit status.
func (p *Program) run(ctx context.Context, env *Env, cmd *Command, args []string) int {
	if len(args) > 0 && args[0] == "help" {
		// "ipcplay primes help" is a request for help, not a number.
		p.printHelp(env.Stdout, env.Width, cmd)
		return 0
	}
	pos, err := ParseFlags(&cmd.Flag, args)
	if err == nil && env.Run == nil {
		env.Run, _ = sysinfo.StartRun() // no /proc/stat: no warnings
	}
	if errors.Is(err, flag.ErrHelp) {
		p.printHelp(env.Stdout, env.Width, cmd)
		return 0
	}
	if err == nil {
		err = cmd.Run(ctx, env, pos)
	}
	var ue *UsageError
	if _, ok := Interrupted(ctx); ok && err == nil {
		// A lab that finished its report after Ctrl-C (one whose
		// watchdog ended the run, say) was still interrupted.
		err = context.Cause(ctx)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "%s %s: %v (see '%s %s -h')\n", p.Name, cmd.Path(), err, p.Name, cmd.Path())
		return 2
	}
	if sig, ok := Interrupted(ctx); ok {
		fmt.Fprintf(env.Stderr, "%s %s: %v; every child stopped\n", p.Name, cmd.Path(), context.Cause(ctx))
		return 128 + int(sig)
	}
	fmt.Fprintf(env.Stderr, "%s %s: %v\n", p.Name, cmd.Path(), err)
	return 1
}

// usage is the general help: the table of commands.
func (p *Program) usage(w io.Writer, width int) {
	fmt.Fprintf(w, "%s: %s\n\n", p.Name, p.Short)
	fmt.Fprintf(w, "usage: %s <command> [flags] [args]\n\ncommands:\n", p.Name)
	for _, c := range p.Commands {
		writeIndented(w, width, fmt.Sprintf("  %-10s ", c.Name()), c.Short)
	}
	fmt.Fprintf(w, "\nother commands: help [COMMAND], version, completion bash|zsh|fish, man\n")
	fmt.Fprintf(w, "run '%s <command> -h' for a command's flags and examples\n", p.Name)
}

// printHelp writes cmd's full help: usage, long text, subcommands, flags.
func (p *Program) printHelp(w io.Writer, width int, cmd *Command) {
	fmt.Fprintf(w, "usage: %s %s\n", p.Name, pathUsage(cmd))
	if cmd.Long != "" {
		fmt.Fprintln(w)
		writeText(w, width, cmd.Long)
	}
	if len(cmd.Commands) > 0 {
		fmt.Fprintf(w, "\nsubcommands:\n")
		for _, s := range cmd.Commands {
			writeIndented(w, width, fmt.Sprintf("  %-10s ", s.Name()), s.Short)
		}
		fmt.Fprintf(w, "\nrun '%s %s <subcommand> -h' for its flags\n", p.Name, cmd.Path())
	}
	if hasFlags(&cmd.Flag) {
		fmt.Fprintf(w, "\nflags:\n")
		PrintFlags(w, width, &cmd.Flag)
	}
}

// pathUsage is cmd's usage line with its parents' words before it.
func pathUsage(cmd *Command) string {
	if cmd.parent == nil || cmd.parent.parent == nil {
		return cmd.UsageLine
	}
	return cmd.parent.Path() + " " + cmd.UsageLine
}
