package benchlab

import (
	"errors"
	"fmt"
)

// errStopped is what a goroutine end returns once its pair was stopped.
var errStopped = errors.New("pair stopped")

// errLength reports a message of another length than expected.
func errLength(got, want int) error {
	return fmt.Errorf("message of %d bytes, want %d: %w", got, want, errBadOp)
}
