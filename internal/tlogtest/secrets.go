package tlogtest

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Secrets is what a server's output (logs, banner) must never reveal: token
// secrets, the master key, signing keys. Tests that run a server collect
// its output and call Check when it is done; the process and in-process
// server helpers do it for every test. Safe for concurrent use.
type Secrets struct {
	mu        sync.Mutex
	values    map[string]string // secret value -> what it is
	allowOnce map[string]bool   // values that may appear exactly once (the first admin token in the banner)
}

// tokenPattern matches an API token secret (auth.SecretPrefix and 43
// characters of base64url): any of them in output is a leak, known to the
// test or not.
var tokenPattern = regexp.MustCompile(`ind_[A-Za-z0-9_-]{43}`)

// NewSecrets returns an empty set.
func NewSecrets() *Secrets {
	return &Secrets{values: map[string]string{}, allowOnce: map[string]bool{}}
}

// Add adds a secret string.
func (s *Secrets) Add(what, value string) {
	if len(value) < 8 {
		return // too short to search for meaningfully
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[value] = what
}

// AddKey adds raw key bytes in every printable form: hex (both cases) and
// base64 (standard and URL alphabets, padded or not).
func (s *Secrets) AddKey(what string, key []byte) {
	for _, v := range []string{
		hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)),
		base64.StdEncoding.EncodeToString(key), base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key),
	} {
		s.Add(what, v)
	}
}

// AddNoteKey adds a golang.org/x/mod/sumdb/note signer key
// ("PRIVATE+KEY+name+hash+base64") and its key material alone.
func (s *Secrets) AddNoteKey(what, skey string) {
	skey = strings.TrimSpace(skey)
	s.Add(what, skey)
	// PRIVATE+KEY+<name>+<hash>+<base64 key>: the base64 may hold '+'.
	if f := strings.SplitN(skey, "+", 5); len(f) == 5 {
		s.Add(what+" (key bytes)", f[4])
		if b, err := base64.StdEncoding.DecodeString(f[4]); err == nil && len(b) > 1 {
			s.AddKey(what+" (key bytes)", b[1:])
		}
	}
}

// AllowOnce lets value appear exactly once (the first admin token, which
// the first-start banner prints once by design).
func (s *Secrets) AllowOnce(value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowOnce[value] = true
}

// AddDataDir adds the secrets found in the top level of an indelible data
// directory (or a witness's): admin.token (allowed once), master.key, and
// every file holding a note signer key (log.key, witness keys); and the
// master key kept beside the directory (<dir>.master.key).
func (s *Secrets) AddDataDir(dir string) {
	s.AddFile(filepath.Clean(dir) + ".master.key")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		s.AddFile(filepath.Join(dir, e.Name()))
	}
}

// AddFile adds the secret a file holds, if it is one: a note signer key, a
// token (allowed once if it is admin.token), or a 32-byte key in hex.
func (s *Secrets) AddFile(name string) {
	b, err := os.ReadFile(name)
	if err != nil || len(b) > 4096 {
		return
	}
	v := strings.TrimSpace(string(b))
	switch {
	case strings.HasPrefix(v, "PRIVATE+KEY+"):
		s.AddNoteKey(name, v)
	case tokenPattern.MatchString(v) && len(v) == 47:
		s.Add(name, v)
		if filepath.Base(name) == "admin.token" {
			s.AllowOnce(v)
		}
	case len(v) == 64:
		if k, err := hex.DecodeString(v); err == nil {
			s.AddKey(name, k)
		}
	case len(b) == 32 && filepath.Ext(name) == ".key":
		s.AddKey(name, b)
	}
}

// Scan returns one message per leak in output: each known secret found
// (more than once for an allowed-once value), and each token secret.
func (s *Secrets) Scan(output string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var leaks []string
	for v, what := range s.values {
		n := strings.Count(output, v)
		if n > 1 || n == 1 && !s.allowOnce[v] {
			leaks = append(leaks, "the output reveals "+what+" ("+itoa(n)+" times)")
		}
	}
	counts := map[string]int{}
	for _, tok := range tokenPattern.FindAllString(output, -1) {
		counts[tok]++
	}
	for tok, n := range counts {
		if _, known := s.values[tok]; known {
			continue // reported above
		}
		leaks = append(leaks, "the output holds a token secret "+tok[:8]+"... ("+itoa(n)+" times)")
	}
	return leaks
}

// Check fails t for every leak Scan finds in output (what names it).
func (s *Secrets) Check(t testing.TB, what, output string) {
	t.Helper()
	for _, l := range s.Scan(output) {
		t.Errorf("%s: %s", what, l)
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
