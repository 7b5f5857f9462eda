package primes

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"

	"ipcplay"
)

// A Labeled number is one input of the lab with the name it is known by.
type Labeled struct {
	Label string
	N     uint64
}

// ClassicSet returns the labeled numbers of the classic lab, read from
// testdata/primes.txt (embedded in the binary).
func ClassicSet() ([]Labeled, error) {
	return ParseLabeled(ipcplay.LabeledPrimes)
}

// ParseLabeled reads lines of "label<TAB>number"; blank lines and lines
// starting with # are skipped.
func ParseLabeled(text string) ([]Labeled, error) {
	var out []Labeled
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		i := strings.LastIndexByte(s, '\t')
		if i < 0 {
			return nil, fmt.Errorf("labeled numbers line %d: want label<TAB>number", line)
		}
		n, err := ParseNumber(strings.TrimSpace(s[i+1:]))
		if err != nil {
			return nil, fmt.Errorf("labeled numbers line %d: %w", line, err)
		}
		out = append(out, Labeled{Label: strings.TrimSpace(s[:i]), N: n})
	}
	return out, sc.Err()
}

// ParseNumber parses a decimal number from 0 to 2^64-1 and says plainly
// what is wrong with anything else.
func ParseNumber(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err == nil {
		return n, nil
	}
	digits, negative := strings.CutPrefix(s, "-")
	allDigits := digits != "" && strings.Trim(digits, "0123456789") == ""
	switch {
	case allDigits && negative:
		return 0, fmt.Errorf("%q is negative: want a number from 0 to 18446744073709551615", s)
	case allDigits:
		return 0, fmt.Errorf("%q is above 2^64-1 = 18446744073709551615", s)
	}
	return 0, fmt.Errorf("%q is not a decimal number", s)
}
