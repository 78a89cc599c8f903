//go:build !(linux || darwin || freebsd || dragonfly)

package ledger

import "errors"

// statfsFree is not implemented on this platform: the free-space check is
// skipped (watchDisk ignores errors), and appends are never paused for a full
// disk.
func statfsFree(dir string) (uint64, error) {
	return 0, errors.New("ledger: free space unknown on this platform")
}
