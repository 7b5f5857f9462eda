package pipelab

import (
	"errors"
	"fmt"
	"os"

	"ipcplay/pipes"
)

// CapacityReport is what `ipcplay pipes capacity` shows.
type CapacityReport struct {
	// Default is a fresh pipe's capacity as F_GETPIPE_SZ reports it, and
	// Measured what filling one until EAGAIN counted.
	Default  int
	Measured int
	// Max is /proc/sys/fs/pipe-max-size.
	Max int
	// ResizeRequest is the size asked for (1 MiB, or Max if lower);
	// Resized is what F_SETPIPE_SZ gave and ResizedMeasured what filling
	// the resized pipe counted.
	ResizeRequest   int
	Resized         int
	ResizedMeasured int
	// OddRequest is a size that is not a power of two pages, and
	// OddResized what the kernel rounded it up to.
	OddRequest int
	OddResized int
	// OverMaxErr is ipcplay's own refusal of a request one byte over Max:
	// pipes.Resize checks pipe-max-size before it asks the kernel, so that
	// results do not depend on who runs the lab.
	OverMaxErr string
	// KernelOverMax is what the kernel itself granted for that request
	// (F_SETPIPE_SZ on a fresh pipe, no check of ours first), and
	// KernelOverMaxErr its refusal: EPERM for a process without
	// CAP_SYS_RESOURCE, while root may go past pipe-max-size.
	KernelOverMax    int
	KernelOverMaxErr error
	// CapSysResource says whether this process holds CAP_SYS_RESOURCE,
	// and CapKnown whether /proc/self/status told.
	CapSysResource, CapKnown bool
}

// Capacity measures the pipes of this system.
func Capacity() (CapacityReport, error) {
	var rep CapacityReport
	r, w, err := os.Pipe()
	if err != nil {
		return rep, fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	defer w.Close()
	if rep.Default, err = pipes.Capacity(w); err != nil {
		return rep, err
	}
	if rep.Measured, _, err = pipes.MeasureCapacity(0); err != nil {
		return rep, err
	}
	if rep.Max, err = pipes.MaxSize(); err != nil {
		return rep, err
	}
	rep.ResizeRequest = min(1<<20, rep.Max)
	if rep.Resized, err = pipes.Resize(w, rep.ResizeRequest); err != nil {
		return rep, err
	}
	if rep.ResizedMeasured, _, err = pipes.MeasureCapacity(rep.ResizeRequest); err != nil {
		return rep, err
	}
	rep.OddRequest = min(100_000, rep.Max)
	if rep.OddResized, err = pipes.Resize(w, rep.OddRequest); err != nil {
		return rep, err
	}
	_, err = pipes.Resize(w, rep.Max+1)
	var se *pipes.SizeError
	if !errors.As(err, &se) {
		return rep, fmt.Errorf("resize over the maximum: got %v, want a size error", err)
	}
	rep.OverMaxErr = se.Error()
	rep.KernelOverMax, rep.KernelOverMaxErr = kernelResize(rep.Max + 1)
	rep.CapSysResource, rep.CapKnown = hasCapSysResource()
	return rep, nil
}
