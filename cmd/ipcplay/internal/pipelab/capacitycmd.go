package pipelab

import (
	"context"
	"errors"
	"fmt"
	"os"

	"syscall"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/cmd/ipcplay/internal/report"
	"ipcplay/pipes"
)

func capacityCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "capacity [flags]",
		Short:     "what a pipe holds: default, measured, system maximum, and what a resize does",
		Long: `Shows the capacity of a pipe on this system: what F_GETPIPE_SZ reports for a fresh pipe, what filling one until write(2) fails with EAGAIN counts, the largest size an unprivileged process may set (/proc/sys/fs/pipe-max-size), what F_SETPIPE_SZ does with a request for 1 MiB and with one that is not a power of two pages, and what happens to a request one byte over the maximum: ipcplay refuses it itself, for everyone, and the kernel, asked directly, refuses it with EPERM unless the process has CAP_SYS_RESOURCE (root).

Examples:
  ipcplay pipes capacity
  ipcplay pipes capacity --json
  sudo ipcplay pipes capacity`,
	}
	out := base.AddOutputFlags(&cmd.Flag)
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		rep, err := Capacity()
		if err != nil {
			return err
		}
		return report.Write(env, out, capacityReport(rep))
	}
	return cmd
}

func capacityReport(c CapacityReport) *report.Report {
	r := report.New("pipes capacity", "pipes capacity: what a pipe holds on this system")
	r.Config["euid"] = os.Geteuid()
	r.Config["pipe_max_size"] = c.Max
	t := r.Table("capacity", "",
		report.Col("what", "what", report.Text),
		report.Col("bytes", "bytes", report.Bytes),
		report.Col("how", "how", report.Text),
	)
	over := base.Count(int64(c.Max+1)) + "B"
	t.Row("default", c.Default, "F_GETPIPE_SZ on a fresh pipe")
	t.Row("measured", c.Measured, "filled with 4 KiB writes until EAGAIN")
	t.Row("system maximum", c.Max, pipes.MaxSizeFile)
	t.Row("resize to "+base.FormatSize(int64(c.ResizeRequest)), c.Resized, "F_SETPIPE_SZ")
	t.Row("measured after resize", c.ResizedMeasured, "filled until EAGAIN")
	t.Row("resize to "+base.FormatSize(int64(c.OddRequest)), c.OddResized, "rounded up to a power of two pages")
	t.Row("resize to "+over+" (ipcplay)", nil, "refused by ipcplay: over pipe-max-size")
	kernelHow := "granted: CAP_SYS_RESOURCE goes past pipe-max-size"
	var kernelBytes any = c.KernelOverMax
	if c.KernelOverMaxErr != nil {
		kernelBytes = nil
		kernelHow = "refused: " + c.KernelOverMaxErr.Error()
		if errors.Is(c.KernelOverMaxErr, syscall.EPERM) {
			kernelHow = "refused with EPERM"
		}
	}
	t.Row("resize to "+over+" (kernel)", kernelBytes, kernelHow)
	t.Notef("ipcplay's pipes.Resize checks pipe-max-size before it asks the kernel, for every user, so that results do not depend on who runs the lab; the last row asks the kernel directly.")

	agree := "agrees"
	if c.Default != c.Measured || c.Resized != c.ResizedMeasured {
		agree = "DISAGREES"
	}
	r.Verdictf("a pipe holds %s (%s bytes) by default here and up to %s after F_SETPIPE_SZ; filling one %s with what the kernel reports, and a writer blocks once it is full",
		base.FormatSize(int64(c.Default)), base.Count(int64(c.Default)), base.FormatSize(int64(c.Max)), agree)
	who := fmt.Sprintf("this process (euid %d) ", os.Geteuid())
	switch {
	case !c.CapKnown:
		who += "may or may not hold CAP_SYS_RESOURCE (/proc/self/status did not say)"
	case c.CapSysResource:
		who += "holds CAP_SYS_RESOURCE, which lets it go past pipe-max-size"
	case os.Geteuid() == 0:
		who += "is root without CAP_SYS_RESOURCE (a container, say), the capability that lets root go past pipe-max-size"
	default:
		who += "lacks CAP_SYS_RESOURCE, the capability that lets root go past pipe-max-size"
	}
	switch {
	case c.KernelOverMaxErr == nil:
		r.Verdictf("%s is over pipe-max-size: ipcplay refused it itself, for every user, but the kernel granted %s: %s",
			over, base.FormatSize(int64(c.KernelOverMax)), who)
	case errors.Is(c.KernelOverMaxErr, syscall.EPERM):
		r.Verdictf("%s is over pipe-max-size: ipcplay refused it itself, and so did the kernel (EPERM): %s", over, who)
	default:
		r.Verdictf("%s is over pipe-max-size: ipcplay refused it itself, and the kernel failed it with %v", over, c.KernelOverMaxErr)
	}
	r.Config["cap_sys_resource"] = c.CapSysResource
	if c.Default != c.Measured || c.Resized != c.ResizedMeasured {
		r.Warnf("F_GETPIPE_SZ reported %s and %s, filling counted %s and %s", base.Count(int64(c.Default)), base.Count(int64(c.Resized)),
			base.Count(int64(c.Measured)), base.Count(int64(c.ResizedMeasured)))
	}
	return r
}
