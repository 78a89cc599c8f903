package tlogtest

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// eachFile calls f with the path and contents of every regular file under
// dir. It fails t on a walk error, and if dir holds no file at all (a check
// over nothing proves nothing).
func eachFile(t testing.TB, dir string, f func(path string, b []byte)) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		f(p, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no files under %s", dir)
	}
}

// FilesContaining returns the files under dir whose bytes contain needle.
func FilesContaining(t testing.TB, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	eachFile(t, dir, func(p string, b []byte) {
		if bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
	})
	return hits
}

// CheckNotInFiles fails t for every file under dir that contains one of
// the needles, naming the needle and the file.
func CheckNotInFiles(t testing.TB, dir string, needles map[string][]byte) {
	t.Helper()
	eachFile(t, dir, func(p string, b []byte) {
		for name, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s found in %s", name, p)
			}
		}
	})
}
