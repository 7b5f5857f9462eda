package benchlab

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"ipcplay/cmd/ipcplay/internal/base"
)

// limit returns why mechanism m cannot carry size-byte messages on this
// machine, or "". Limits found only by trying (a datagram socket's send
// buffer) are reported by the cell when the first send fails with
// EMSGSIZE.
func limit(m Mech, size int) string {
	switch m.Name {
	case "udp":
		if size > udpMax {
			return "past UDP's 65,507 B payload limit"
		}
	case "mq":
		if max, err := readInt("/proc/sys/fs/mqueue/msgsize_max"); err == nil && size > max {
			return fmt.Sprintf("past mqueue msgsize_max (%s, /proc/sys/fs/mqueue/msgsize_max)", base.FormatSize(int64(max)))
		}
	}
	return ""
}

func readInt(name string) (int, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
