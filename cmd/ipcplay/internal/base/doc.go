// Package base is what every ipcplay lab stands on, in the manner of
// cmd/go's internal/base: the Command type and the dispatcher that runs a
// table of them, the flags common to labs declared once (--json, --svg,
// --html, --wide, --procs, --seconds, --mode), one Mode type, one size and
// one duration parser, range-checked numeric flags, the streams a command
// writes to, and the progress line.
//
// A lab's package builds its *Command and main hands the table of labs to
// Main. Nothing here imports a lab, so no import runs back up. Nothing here
// does work at package init either: re-exec'd children link this package and
// must not pay for the CLI.
//
// Exit codes: 0 for success and for -h, 1 when a lab fails, 2 for a usage
// error (always one line on stderr naming the flag and what it accepts), and
// 128+signal when interrupted (130 for Ctrl-C).
package base
