// Package ipcplay holds the data files that the ipcplay command ships with.
// The command itself is in cmd/ipcplay; the mechanisms it measures are in
// the packages procs, shm, pipes and ipc.
package ipcplay

import _ "embed"

// LabeledPrimes is testdata/primes.txt: the numbers the primes lab checks
// when it is given none, one "label<TAB>number" per line.
//
//go:embed testdata/primes.txt
var LabeledPrimes string
