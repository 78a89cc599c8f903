//go:build unix

package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockSpool takes the spool directory's lock file for as long as the
// returned file is open: a second client on the same directory, in this
// process or another, is refused instead of resending and deleting the
// first one's events. The kernel drops the lock when the process dies.
func lockSpool(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("client: spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("client: spool %s is in use by another client (one at a time may use a spool directory)", dir)
		}
		return nil, fmt.Errorf("client: spool: locking %s: %w", dir, err)
	}
	return f, nil
}
