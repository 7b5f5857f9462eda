//go:build !linux

// ipcplay measures Linux system calls (memfd, futex, pipes' F_SETPIPE_SZ,
// /proc): on any other system it says so and exits.

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "ipcplay: runs on Linux only (it measures Linux's pipes, sockets, futexes and /proc)")
	os.Exit(1)
}
