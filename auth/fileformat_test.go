package auth

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTokenFileFormat pins the token file's bytes: the public record's
// fields in order (zero times left out) and the hex SHA-256 of the secret,
// never the secret.
func TestTokenFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	p := NewFilePersister(path)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, r := range []Record{
		{Token: Token{Name: "ci", Scopes: []Scope{ScopeAppend, ScopeRead}, Created: at}, Hash: [32]byte{1, 2, 3}},
		{Token: Token{Name: "old", Scopes: []Scope{ScopeAdmin}, Created: at, LastUsed: at.Add(time.Hour), Revoked: at.Add(2 * time.Hour)}, Hash: [32]byte{0xff}},
	} {
		if err := p.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{
  "tokens": [
    {
      "name": "ci",
      "scopes": [
        "append",
        "read"
      ],
      "created": "2026-11-25T10:00:00Z",
      "sha256": "0102030000000000000000000000000000000000000000000000000000000000"
    },
    {
      "name": "old",
      "scopes": [
        "admin"
      ],
      "created": "2026-11-25T10:00:00Z",
      "last_used": "2026-11-25T11:00:00Z",
      "revoked": "2026-11-25T12:00:00Z",
      "sha256": "ff00000000000000000000000000000000000000000000000000000000000000"
    }
  ]
}
`
	if string(b) != want {
		t.Fatalf("token file:\n%s\nwant\n%s", b, want)
	}
	recs, err := NewFilePersister(path).Load()
	if err != nil || len(recs) != 2 || recs[0].Name != "ci" || recs[0].Hash != ([32]byte{1, 2, 3}) || !recs[1].Revoked.Equal(at.Add(2*time.Hour)) {
		t.Fatalf("Load: %+v, %v", recs, err)
	}
}
