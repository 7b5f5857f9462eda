package rpclab

import (
	"os"
	"testing"

	"ipcplay/procs"
)

func TestMain(m *testing.M) {
	procs.Register(ManagerServerRole, ManagerServerMain)
	procs.Register(ManagerWorkerRole, ManagerWorkerMain)
	procs.Register(ManagerShmWorkerRole, ManagerShmWorkerMain)
	procs.Init()
	os.Exit(m.Run())
}
