package chaos

import (
	"os"
	"testing"

	"ipcplay/procs"
)

func TestMain(m *testing.M) {
	RegisterRoles()
	procs.Init()
	os.Exit(m.Run())
}
