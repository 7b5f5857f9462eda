package factor

import (
	"os"
	"testing"

	"ipcplay/procs"
)

func TestMain(m *testing.M) {
	procs.Register(WorkerRole, WorkerMain)
	procs.Init()
	os.Exit(m.Run())
}
