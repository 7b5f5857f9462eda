package rpclab

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"ipcplay/ipc"
)

// KeyEnv is the environment variable that holds the shared key.
const KeyEnv = "IPCPLAY_KEY"

// ErrNoKey is returned by LoadKey when no key was given.
var ErrNoKey = errors.New("no key: set " + KeyEnv + " or pass --key-file")

// LoadKey returns the shared key: the contents of keyFile if it is set
// (without a final newline), else the value of $IPCPLAY_KEY. A key file
// that other users could read is refused, as ssh refuses such a private
// key.
func LoadKey(keyFile string) ([]byte, error) {
	var key []byte
	if keyFile != "" {
		f, err := os.Open(keyFile)
		if err != nil {
			return nil, fmt.Errorf("key file: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("key file: %w", err)
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("key file %s has mode %#o: others may read it (chmod 600 it)", keyFile, perm)
		}
		buf := make([]byte, 4097)
		n, err := f.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", keyFile, err)
		}
		if n > 4096 {
			return nil, fmt.Errorf("key file %s: over 4096 bytes", keyFile)
		}
		key = bytes.TrimRight(buf[:n], "\r\n")
	} else {
		key = []byte(os.Getenv(KeyEnv))
		if len(key) == 0 {
			return nil, ErrNoKey
		}
	}
	if len(key) < ipc.MinKeyLen {
		return nil, fmt.Errorf("key of %d bytes: want at least %d", len(key), ipc.MinKeyLen)
	}
	return key, nil
}
