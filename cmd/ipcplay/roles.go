package main

import (
	"ipcplay/cmd/ipcplay/internal/factor"
	"ipcplay/cmd/ipcplay/internal/primes"
	"ipcplay/cmd/ipcplay/internal/shmlab"
	"ipcplay/procs"
)

// registerRoles is the one place the real binary registers its child roles.
// Each package's TestMain registers the roles its own tests start.
func registerRoles() {
	procs.Register(primes.WorkerRole, primes.WorkerMain)
	shmlab.RegisterRoles()
	procs.Register(factor.WorkerRole, factor.WorkerMain)
}
