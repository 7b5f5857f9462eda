// Package shm holds memory that several processes map at once, and typed
// views over it that are safe to use from all of them.
//
// A [Region] is an anonymous memory file (memfd_create) sized with ftruncate,
// sealed so that nobody can shrink it under a mapping (which would turn later
// accesses into SIGBUS), and mapped shared with github.com/edsrzf/mmap-go.
// Nothing is created under /dev/shm or on disk: the memory lives as long as
// some process holds the descriptor or a mapping, so a crash leaks nothing.
//
// A child process receives the region's descriptor as an inherited file (see
// package procs, slot procs.FDShm) and maps it with [Open], which checks that
// the descriptor is a sealed memfd of the size the parent announced.
//
// The views, [Flag] and [Int64Array], access the shared words only through
// sync/atomic. That is a rule, not a convenience: the race detector sees the
// goroutines of one process, never the other processes mapping the same page,
// so a plain load or store of a shared word is a race no tool will report.
// The views work the same over memory that is not shared between processes
// (see [Local]), which lets one piece of code run on goroutines and on
// processes alike.
package shm
