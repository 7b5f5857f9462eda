package base

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// builtins are the commands every Program has besides its table.
var builtins = []string{"help", "version", "completion", "man"}

// words lists, for every command path ("" for the top), the words that
// may follow it: subcommands, then flags as --name.
func (p *Program) words(root *Command) map[string][]string {
	m := map[string][]string{}
	var walk func(c *Command, path string)
	walk = func(c *Command, path string) {
		var ws []string
		for _, s := range c.Commands {
			ws = append(ws, s.Name())
			walk(s, strings.TrimSpace(path+" "+s.Name()))
		}
		c.Flag.VisitAll(func(f *flag.Flag) { ws = append(ws, "--"+f.Name) })
		if path == "" {
			ws = append(ws, builtins...)
			ws = append(ws, "--help", "--version")
		} else {
			ws = append(ws, "--help")
		}
		m[path] = ws
	}
	walk(root, "")
	return m
}

// completion writes a shell completion script for shell.
func (p *Program) completion(w io.Writer, root *Command, shell string) error {
	words := p.words(root)
	paths := make([]string, 0, len(words))
	for k := range words {
		paths = append(paths, k)
	}
	sort.Strings(paths)
	fn := "_" + p.Name
	switch shell {
	case "bash":
		fmt.Fprintf(w, "# bash completion for %s; load with: source <(%s completion bash)\n", p.Name, p.Name)
		fmt.Fprintf(w, "%s() {\n  local cur path w i\n  cur=${COMP_WORDS[COMP_CWORD]}\n  path=\n", fn)
		fmt.Fprintf(w, "  for ((i = 1; i < COMP_CWORD; i++)); do\n    w=${COMP_WORDS[i]}\n    case $w in -*) continue ;; esac\n")
		fmt.Fprintf(w, "    case \"${path:+$path }$w\" in\n")
		for _, k := range paths {
			if k != "" {
				fmt.Fprintf(w, "      %q) path=%q ;;\n", k, k)
			}
		}
		fmt.Fprintf(w, "    esac\n  done\n  case $path in\n")
		for _, k := range paths {
			fmt.Fprintf(w, "    %q) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", k, strings.Join(words[k], " "))
		}
		fmt.Fprintf(w, "  esac\n}\ncomplete -F %s %s\n", fn, p.Name)
	case "zsh":
		fmt.Fprintf(w, "#compdef %s\n# zsh completion for %s; load with: source <(%s completion zsh)\n", p.Name, p.Name, p.Name)
		fmt.Fprintf(w, "%s() {\n  local path= w\n  for w in ${words[2,CURRENT-1]}; do\n    [[ $w == -* ]] && continue\n", fn)
		fmt.Fprintf(w, "    case \"${path:+$path }$w\" in\n")
		for _, k := range paths {
			if k != "" {
				fmt.Fprintf(w, "      %q) path=%q ;;\n", k, k)
			}
		}
		fmt.Fprintf(w, "    esac\n  done\n  case $path in\n")
		for _, k := range paths {
			fmt.Fprintf(w, "    %q) compadd -- %s ;;\n", k, strings.Join(words[k], " "))
		}
		fmt.Fprintf(w, "  esac\n}\ncompdef %s %s\n", fn, p.Name)
	case "fish":
		fmt.Fprintf(w, "# fish completion for %s; load with: %s completion fish | source\n", p.Name, p.Name)
		for _, k := range paths {
			cond := "__fish_use_subcommand"
			if k != "" {
				cond = "__fish_seen_subcommand_from " + k[strings.LastIndexByte(k, ' ')+1:]
			}
			for _, word := range words[k] {
				if name, ok := strings.CutPrefix(word, "--"); ok {
					fmt.Fprintf(w, "complete -c %s -n '%s' -l %s\n", p.Name, cond, name)
				} else {
					fmt.Fprintf(w, "complete -c %s -n '%s' -f -a %s\n", p.Name, cond, word)
				}
			}
		}
	default:
		return Usagef("completion %q: want bash, zsh or fish", shell)
	}
	return nil
}

// man writes a man page (section 1, roff) made from the same help text
// the commands print.
func (p *Program) man(w io.Writer, root *Command) {
	esc := func(s string) string {
		s = strings.ReplaceAll(s, `\`, `\e`)
		s = strings.ReplaceAll(s, "-", `\-`)
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
				l = `\&` + l
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	up := strings.ToUpper(p.Name)
	fmt.Fprintf(w, ".TH %s 1 %q %q \"User Commands\"\n", up, time.Now().Format("2006-01-02"), p.Version())
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", p.Name, esc(p.Short))
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B %s\n\\fIcommand\\fR [\\fIflags\\fR] [\\fIargs\\fR]\n", p.Name)
	fmt.Fprintf(w, ".SH COMMANDS\n")
	var walk func(c *Command)
	walk = func(c *Command) {
		fmt.Fprintf(w, ".SS %s\n", esc(p.Name+" "+pathUsage(c)))
		fmt.Fprintf(w, "%s\n", esc(c.Short))
		if c.Long != "" {
			for _, para := range strings.Split(strings.Trim(c.Long, "\n"), "\n\n") {
				if strings.HasPrefix(para, " ") || strings.Contains(para, "\n ") {
					fmt.Fprintf(w, ".PP\n.nf\n%s\n.fi\n", esc(para))
				} else {
					fmt.Fprintf(w, ".PP\n%s\n", esc(para))
				}
			}
		}
		c.Flag.VisitAll(func(f *flag.Flag) {
			kind, usage := flag.UnquoteUsage(f)
			if k, ok := f.Value.(interface{ kind() string }); ok {
				kind = k.kind()
			}
			fmt.Fprintf(w, ".TP\n.B \\-\\-%s", esc(f.Name))
			if !isBool(f) && kind != "" {
				fmt.Fprintf(w, " \\fI%s\\fR", strings.ToUpper(kind))
			}
			fmt.Fprintf(w, "\n%s\n", esc(usage))
		})
		for _, s := range c.Commands {
			walk(s)
		}
	}
	for _, c := range root.Commands {
		walk(c)
	}
	fmt.Fprintf(w, ".SH EXIT STATUS\n0 on success and for \\-h; 1 when a lab fails; 2 for a usage error; 128+N when ended by signal N (130 for Ctrl\\-C).\n")
	fmt.Fprintf(w, ".SH SEE ALSO\npipe(7), unix(7), futex(2), memfd_create(2), mmap(2), proc(5)\n")
}
