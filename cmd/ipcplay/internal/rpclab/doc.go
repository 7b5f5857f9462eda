// Package rpclab holds the logic of two ipcplay commands built on the
// authenticated msgpack RPC of package ipc.
//
// "rpc serve" and "rpc call" are a demo server and client: [DemoServer]
// offers add, sub, div and echo, and [ParseArgs] turns command-line words
// into the argument list a method receives. The shared key comes from the
// environment variable [KeyEnv] or from a key file ([LoadKey]), never from
// the command line, where every user of the machine could read it in
// /proc/PID/cmdline.
//
// The manager lab ([RunManager]) is Python's multiprocessing.Manager done
// with data only: a server child ([ManagerServerRole]) holds a list and a
// dict, P worker children ([ManagerWorkerRole]) append to the list and
// increment a dict entry through RPC, and the parent checks the final state
// and times it against worker processes doing the same on a list and a
// count in one shared memory region under a futex mutex (package shm, role
// [ManagerShmWorkerRole]), and against goroutines sharing the server's
// structures under a sync.Mutex.
package rpclab
