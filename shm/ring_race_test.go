//go:build race

package shm

// raceBuild is true when the tests run under the race detector, whose
// instrumented children start several times slower: the kill loops run
// fewer rounds then.
const raceBuild = true
