package tlogtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsScan proves the check fails when a secret is logged: every
// kind of secret, in every form, is found; the admin token once is not a
// leak, twice is; output without secrets passes.
func TestSecretsScan(t *testing.T) {
	dir := t.TempDir()
	admin := "ind_" + strings.Repeat("A", 43)
	master := strings.Repeat("0123456789abcdef", 4)
	skey := "PRIVATE+KEY+example.com/log+0a1b2c3d+AT4ZWvxEs6rgjOm1mx4lU9Rdo0c2+VsnZDoDCVT6xVnK"
	os.WriteFile(filepath.Join(dir, "admin.token"), []byte(admin+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "master.key"), []byte(master+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "log.key"), []byte(skey+"\n"), 0o600)
	s := NewSecrets()
	s.AddDataDir(dir)
	s.AddKey("a data key", []byte("0123456789abcdef0123456789abcdef"))

	clean := "listening on http://127.0.0.1:8080\nadmin token:  " + admin + "\nverifier key: example.com/log+0a1b2c3d+AQ\n"
	if leaks := s.Scan(clean); len(leaks) != 0 {
		t.Fatalf("clean output: %q", leaks)
	}
	for _, leak := range []string{
		"token=" + admin, // the admin token a second time
		"auth failed for ind_" + strings.Repeat("b", 43), // any token
		"master " + master,
		"master " + strings.ToUpper(master),
		"key " + skey,
		"AT4ZWvxEs6rgjOm1mx4lU9Rdo0c2+VsnZDoDCVT6xVnK",
		"dk=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"dk=30313233343536373839616263646566" + "30313233343536373839616263646566",
	} {
		if leaks := s.Scan(clean + leak + "\n"); len(leaks) == 0 {
			t.Errorf("leak %q not found", leak)
		}
	}
	// Check reports through t.
	ft := &fakeT{TB: t}
	s.Check(ft, "server", clean+"master "+master)
	if ft.errors != 1 {
		t.Fatalf("Check reported %d errors, want 1", ft.errors)
	}
}

type fakeT struct {
	testing.TB
	errors int
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.errors++ }
