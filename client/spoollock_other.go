//go:build !unix

package client

import "os"

// lockSpool does not lock where flock(2) is missing: one client at a time
// may use a spool directory (WithSpool), which nothing checks here.
func lockSpool(dir string) (*os.File, error) { return nil, nil }
