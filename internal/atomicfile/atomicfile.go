// Package atomicfile replaces small files atomically and durably, readable
// only by their owner: the state files that must survive a crash whole (a
// token store, a key guard's or a witness's high-water mark, an auditor's
// state).
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, mode 0600: it writes a temporary file in
// the same directory (mode 0600 before any byte is written), fsyncs it,
// renames it over path and fsyncs the directory, so that after a crash path
// holds either the old contents or the new, never a mix. On an error the
// temporary file is removed and path is as it was, unless the rename
// succeeded and only the directory fsync failed.
func Write(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, a no-op
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
