package rpclab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"ipcplay/ipc"
)

// KeyEnv is the environment variable that holds the shared key.
const KeyEnv = "IPCPLAY_KEY"

// maxKeyFile bounds the size of a key file.
const maxKeyFile = 4096

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
		buf, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", keyFile, err)
		}
		if len(buf) > maxKeyFile {
			return nil, fmt.Errorf("key file %s: over %d bytes", keyFile, maxKeyFile)
		}
		key = bytes.TrimRight(buf, "\r\n")
		if len(key) == 0 {
			return nil, fmt.Errorf("key file %s is empty: want a key of at least %d bytes", keyFile, ipc.MinKeyLen)
		}
		if len(key) < ipc.MinKeyLen {
			return nil, fmt.Errorf("key file %s: a key of %d bytes, want at least %d", keyFile, len(key), ipc.MinKeyLen)
		}
	} else {
		key = []byte(os.Getenv(KeyEnv))
		if len(key) == 0 {
			return nil, ErrNoKey
		}
	}
	if len(key) < ipc.MinKeyLen {
		return nil, fmt.Errorf("$%s: a key of %d bytes, want at least %d", KeyEnv, len(key), ipc.MinKeyLen)
	}
	return key, nil
}
