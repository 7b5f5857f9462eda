package benchlab

import (
	"context"

	"ipcplay/cmd/ipcplay/internal/report"
)

// perfCheck is the back-to-back comparison with perf bench sched pipe.
type perfCheck struct{}

func checkPerf(ctx context.Context, cfg Config) *perfCheck { return nil }

func (p *perfCheck) report(r *report.Report) {}
