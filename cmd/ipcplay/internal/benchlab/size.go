package benchlab

import "ipcplay/cmd/ipcplay/internal/base"

// sizeName is the size as a column head and sub-benchmark name: 64B, 4KiB.
func sizeName(n int) string { return base.FormatSize(int64(n)) }
