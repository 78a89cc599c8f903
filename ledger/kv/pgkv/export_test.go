package pgkv

import "time"

// SetOwnerCheck sets how often a store opened afterwards checks its owner
// lock's session, and returns the restore.
func SetOwnerCheck(d time.Duration) func() {
	old := ownerCheck
	ownerCheck = d
	return func() { ownerCheck = old }
}

// CheckOwner runs one check of the owner lock's session (keepOwner's
// step); for a store whose own checks are far apart.
func (s *Store) CheckOwner() bool { return s.checkOwner() }
