package shm

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"ipcplay/procs"
)

// The roles the tests start: this test binary run again as a child that
// maps the region it inherited at procs.FDShm.
const (
	roleOpen = "shm-test-open" // open an array: args size type off n; print "ok" or the error
)

func TestMain(m *testing.M) {
	procs.Register(roleOpen, openMain)
	registerLockRoles()
	registerFamilyRoles()
	registerRingRoles()
	registerReviewRoles()
	procs.Init()
	os.Exit(m.Run())
}

// childRegion maps the region a test child inherited; size is args[0].
func childRegion(arg string) (*Region, error) {
	size, err := strconv.Atoi(arg)
	if err != nil {
		return nil, err
	}
	f, err := procs.ChildFile(procs.FDShm, procs.Memfd, "region")
	if err != nil {
		return nil, err
	}
	r, err := Open(f, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func openMain(_ context.Context, args []string) error {
	r, err := childRegion(args[0])
	if err != nil {
		fmt.Println(err)
		return nil
	}
	defer r.Close()
	off, _ := strconv.Atoi(args[2])
	n, _ := strconv.Atoi(args[3])
	switch args[1] {
	case "int64":
		a, err := OpenArray[int64](r.Bytes(), off, n)
		if err == nil {
			a.Add(0, 1)
		}
		fmt.Println(orOK(err))
	case "float64":
		_, err := OpenArray[float64](r.Bytes(), off, n)
		fmt.Println(orOK(err))
	case "bytes":
		_, err := OpenBytes(r.Bytes(), off, n)
		fmt.Println(orOK(err))
	default:
		return fmt.Errorf("unknown type %q", args[1])
	}
	return nil
}

func orOK(err error) any {
	if err == nil {
		return "ok"
	}
	return err
}
