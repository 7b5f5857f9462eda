package rpclab

import (
	"fmt"
	"strings"

	"ipcplay/procs"
)

// RegisterRoles registers the child roles of the manager lab with procs.
func RegisterRoles() {
	procs.Register(ManagerServerRole, ManagerServerMain)
	procs.Register(ManagerWorkerRole, ManagerWorkerMain)
	procs.Register(ManagerShmWorkerRole, ManagerShmWorkerMain)
}

// methodList is DemoMethods for help text, one indented line each.
func methodList() string {
	var b strings.Builder
	for _, m := range DemoMethods {
		fmt.Fprintf(&b, "  %-13s %s\n", m.Name+" "+m.Args, m.Does)
	}
	return strings.TrimRight(b.String(), "\n")
}
