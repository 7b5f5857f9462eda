package main

import (
	"ipcplay/cmd/ipcplay/internal/factor"
	"ipcplay/cmd/ipcplay/internal/pipelab"
	"ipcplay/cmd/ipcplay/internal/primes"
	"ipcplay/cmd/ipcplay/internal/queuelab"
	"ipcplay/cmd/ipcplay/internal/rpclab"
	"ipcplay/cmd/ipcplay/internal/shmlab"
	"ipcplay/procs"
)

// registerRoles is the one place the real binary registers its child roles.
// Each package's TestMain registers the roles its own tests start.
func registerRoles() {
	procs.Register(primes.WorkerRole, primes.WorkerMain)
	procs.Register(pipelab.ChildRole, pipelab.ChildMain)
	procs.Register(pipelab.BenchRole, pipelab.BenchMain)
	procs.Register(rpclab.ManagerServerRole, rpclab.ManagerServerMain)
	procs.Register(rpclab.ManagerWorkerRole, rpclab.ManagerWorkerMain)
	procs.Register(rpclab.ManagerShmWorkerRole, rpclab.ManagerShmWorkerMain)
	shmlab.RegisterRoles()
	queuelab.RegisterRoles()
	procs.Register(factor.WorkerRole, factor.WorkerMain)
}
