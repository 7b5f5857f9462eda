package base

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseFlags parses args against fs and returns the positional arguments.
// Flags are written --name or -name, with their value after = or as the
// next word, and may follow positional arguments ("primes 91 --procs 2");
// "--" ends the flags. A word that looks like a negative number is a
// positional argument. Errors are *UsageError values that name the flag as
// --name; -h and --help return flag.ErrHelp.
func ParseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' || isNumber(a) {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "---") || name == "" {
			return nil, Usagef("bad flag syntax %q", a)
		}
		value, hasValue := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = k, v, true
		}
		if name == "h" || name == "help" {
			return nil, flag.ErrHelp
		}
		f := fs.Lookup(name)
		if f == nil {
			msg := fmt.Sprintf("unknown flag --%s", name)
			if s := Suggest(name, flagNames(fs)); s != "" {
				msg += fmt.Sprintf("; did you mean --%s?", s)
			}
			return nil, &UsageError{Msg: msg}
		}
		if isBool(f) {
			if !hasValue {
				value = "true"
			}
		} else if !hasValue {
			if i+1 >= len(args) {
				return nil, Usagef("flag --%s needs a value: %s", name, f.Usage)
			}
			i++
			value = args[i]
		}
		if err := fs.Set(name, value); err != nil {
			return nil, Usagef("--%s %s: %v", name, value, unwrapFlagError(err))
		}
	}
	return pos, nil
}

// unwrapFlagError drops the strconv wording flag.FlagSet.Set adds to a
// value's own error.
func unwrapFlagError(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func flagNames(fs *flag.FlagSet) []string {
	var ns []string
	fs.VisitAll(func(f *flag.Flag) { ns = append(ns, f.Name) })
	return ns
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// PrintFlags writes fs's flags as --name VALUE, each with its usage
// wrapped under it and its default, sorted by name.
func PrintFlags(w io.Writer, width int, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		if k, ok := f.Value.(interface{ kind() string }); ok {
			kind = k.kind()
		}
		head := "  --" + f.Name
		if !isBool(f) {
			if kind == "" {
				kind = "value"
			}
			head += " " + strings.ToUpper(kind)
		}
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "0s" {
			usage += " (default " + def + ")"
		}
		fmt.Fprintln(w, head)
		writeIndented(w, width, "      ", usage)
	})
}

// IntFlag defines an int flag whose value must lie in [lo, hi]; the range
// is part of its help and of the error for a value outside it.
func IntFlag(fs *flag.FlagSet, name string, def, lo, hi int, usage string) *int {
	v := &intValue{n: def, lo: lo, hi: hi}
	fs.Var(v, name, fmt.Sprintf("%s, %s..%s", usage, Count(int64(lo)), Count(int64(hi))))
	return &v.n
}

type intValue struct{ n, lo, hi int }

func (v *intValue) String() string { return strconv.Itoa(v.n) }
func (v *intValue) kind() string   { return "n" }
func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 0, 64)
	if err != nil || n < int64(v.lo) || n > int64(v.hi) {
		return fmt.Errorf("want a whole number from %s to %s", Count(int64(v.lo)), Count(int64(v.hi)))
	}
	v.n = int(n)
	return nil
}

// SizeFlag defines a byte-count flag (see ParseSize) in [lo, hi].
func SizeFlag(fs *flag.FlagSet, name string, def, lo, hi int64, usage string) *int64 {
	v := &sizeValue{n: def, lo: lo, hi: hi}
	fs.Var(v, name, fmt.Sprintf("%s, %s..%s", usage, FormatSize(lo), FormatSize(hi)))
	return &v.n
}

type sizeValue struct{ n, lo, hi int64 }

func (v *sizeValue) String() string { return FormatSize(v.n) }
func (v *sizeValue) kind() string   { return "size" }
func (v *sizeValue) Set(s string) error {
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	if n < v.lo || n > v.hi {
		return fmt.Errorf("want a size from %s to %s", FormatSize(v.lo), FormatSize(v.hi))
	}
	v.n = n
	return nil
}

// SizesFlag defines a flag holding a comma-separated list of byte counts,
// each in [lo, hi].
func SizesFlag(fs *flag.FlagSet, name string, def []int64, lo, hi int64, usage string) *[]int64 {
	v := &sizesValue{ns: def, lo: lo, hi: hi}
	fs.Var(v, name, fmt.Sprintf("%s (comma-separated), each %s..%s", usage, FormatSize(lo), FormatSize(hi)))
	return &v.ns
}

type sizesValue struct {
	ns     []int64
	lo, hi int64
}

func (v *sizesValue) kind() string { return "sizes" }
func (v *sizesValue) String() string {
	var ss []string
	for _, n := range v.ns {
		ss = append(ss, FormatSize(n))
	}
	return strings.Join(ss, ",")
}

func (v *sizesValue) Set(s string) error {
	var ns []int64
	for _, f := range strings.Split(s, ",") {
		n, err := ParseSize(f)
		if err != nil {
			return err
		}
		if n < v.lo || n > v.hi {
			return fmt.Errorf("size %s: want each size from %s to %s", f, FormatSize(v.lo), FormatSize(v.hi))
		}
		ns = append(ns, n)
	}
	v.ns = ns
	return nil
}

// DurationFlag defines a duration flag in [lo, hi]. A bare number is
// refused with a hint: "1" could mean seconds or nanoseconds.
func DurationFlag(fs *flag.FlagSet, name string, def, lo, hi time.Duration, usage string) *time.Duration {
	v := &durationValue{d: def, lo: lo, hi: hi}
	fs.Var(v, name, fmt.Sprintf("%s, %v..%v", usage, lo, hi))
	return &v.d
}

type durationValue struct{ d, lo, hi time.Duration }

func (v *durationValue) String() string { return v.d.String() }
func (v *durationValue) kind() string   { return "duration" }
func (v *durationValue) Set(s string) error {
	d, err := ParseDuration(s)
	if err != nil {
		return err
	}
	if d < v.lo || d > v.hi {
		return fmt.Errorf("want a duration from %v to %v", v.lo, v.hi)
	}
	v.d = d
	return nil
}

// ParseDuration parses a Go duration such as 500ms, 2s or 1m30s. A bare
// number is an error that suggests a unit.
func ParseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("want a duration with a unit, such as %gs or %gms", f, f)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 500ms, 2s or 1m30s")
	}
	return d, nil
}

// ChoiceFlag defines a string flag that must be one of choices.
func ChoiceFlag(fs *flag.FlagSet, name, def string, choices []string, usage string) *string {
	v := &choiceValue{s: def, choices: choices}
	fs.Var(v, name, fmt.Sprintf("%s: %s", usage, strings.Join(choices, ", ")))
	return &v.s
}

type choiceValue struct {
	s       string
	choices []string
}

func (v *choiceValue) String() string { return v.s }
func (v *choiceValue) kind() string   { return "word" }
func (v *choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if s == c {
			v.s = s
			return nil
		}
	}
	msg := "want " + oneOf(v.choices)
	if g := Suggest(s, v.choices); g != "" {
		msg = fmt.Sprintf("did you mean %q? want %s", g, oneOf(v.choices))
	}
	return errors.New(msg)
}

func oneOf(choices []string) string {
	if len(choices) == 1 {
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// Float64Flag defines a float flag in [lo, hi].
func Float64Flag(fs *flag.FlagSet, name string, def, lo, hi float64, usage string) *float64 {
	v := &floatValue{f: def, lo: lo, hi: hi}
	fs.Var(v, name, fmt.Sprintf("%s, %g..%g", usage, lo, hi))
	return &v.f
}

type floatValue struct{ f, lo, hi float64 }

func (v *floatValue) String() string { return strconv.FormatFloat(v.f, 'g', -1, 64) }
func (v *floatValue) kind() string   { return "x" }
func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < v.lo || f > v.hi {
		return fmt.Errorf("want a number from %g to %g", v.lo, v.hi)
	}
	v.f = f
	return nil
}
