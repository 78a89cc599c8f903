package export

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseErrors: a bad exports file is refused with an error naming the
// problem and, for an entry, its line.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"unknown key", "exports:\n  - name: a\n    type: http_ndjson\n    url: http://x/\n    colour: red\n", "line 5"},
		{"no exports", "exports: []\n", "no exports"},
		{"empty file", "", "no exports"},
		{"bad type", "exports:\n  - {name: a, type: kafka, url: http://x/}\n", `line 2: export 1 ("a"): type "kafka"`},
		{"no url", "exports:\n  - {name: a, type: http_ndjson}\n  - {name: b, type: http_ndjson}\n", "line 2: export 1 (\"a\"): url is required"},
		{"bad url", "exports:\n  - {name: a, type: http_ndjson, url: 'ftp://x/'}\n", "absolute http"},
		{"credentials in url", "exports:\n  - {name: a, type: http_ndjson, url: 'https://u:p@x/'}\n", "credentials"},
		{"duplicate", "exports:\n  - {name: a, type: http_ndjson, url: 'http://x/'}\n  - {name: a, type: http_ndjson, url: 'http://y/'}\n", `line 3: export name "a" already used at line 2`},
		{"bad name", "exports:\n  - {name: 'a b', type: http_ndjson, url: 'http://x/'}\n", "name:"},
		{"hec without token", "exports:\n  - {name: s, type: splunk_hec, url: 'https://splunk:8088'}\n", "token_file is required"},
		{"elastic without index", "exports:\n  - {name: e, type: elastic_bulk, url: 'https://es:9200'}\n", "index is required"},
		{"bad outcome", "exports:\n  - {name: e, type: http_ndjson, url: 'http://x/', filter: {outcome: maybe}}\n", "filter:"},
		{"bad filter key", "exports:\n  - {name: e, type: http_ndjson, url: 'http://x/', filter: {time: now}}\n", "line 2"},
		{"not yaml", "exports: [\n", "ErrInvalid"},
		// Not in the file's schema (DESIGN section 13): the server's flag replaces it.
		{"public_url", "exports:\n  - {name: a, type: http_ndjson, url: 'http://x/'}\npublic_url: https://ledger/\n", "line 3: public_url is not a key of the exports file"},
		{"public_url names the flag", "public_url: https://ledger/\nexports:\n  - {name: a, type: http_ndjson, url: 'http://x/'}\n", "serve --public-url URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", err)
			}
			if tc.want != "ErrInvalid" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestLoadTokenFile: a token file readable by others, or empty, is refused.
func TestLoadTokenFile(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok")
	os.WriteFile(tok, []byte("s3cret\n"), 0o644)
	cfg := filepath.Join(dir, "x.yaml")
	os.WriteFile(cfg, []byte("exports:\n  - {name: s, type: splunk_hec, url: 'https://splunk:8088', token_file: "+tok+"}\n"), 0o600)
	if _, err := Load(cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("token file 0644: %v", err)
	} else if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the token: %v", err)
	}
	os.Chmod(tok, 0o600)
	f, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.Exports[0].token != "s3cret" {
		t.Errorf("token %q", f.Exports[0].token)
	}
	os.WriteFile(tok, []byte("\n"), 0o600)
	if _, err := Load(cfg); err == nil {
		t.Error("empty token file accepted")
	}
}

// FuzzParse: no input panics, and whatever is accepted is valid.
func FuzzParse(f *testing.F) {
	f.Add([]byte("exports:\n  - {name: a, type: http_ndjson, url: 'http://x/'}\n"))
	f.Add([]byte("exports:\n  - {name: e, type: elastic_bulk, url: 'https://es:9200', index: audit, filter: {action: a.b}}\n"))
	f.Add([]byte("exports:\n  - {name: s, type: splunk_hec, url: 'https://s', token_file: /t, index: main}\n"))
	f.Add([]byte("public_url: https://ledger/\nexports:\n  - {name: s, type: splunk_hec, url: 'https://s', token_file: /t}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		if len(c.Exports) == 0 {
			t.Fatal("accepted without exports")
		}
		for i := range c.Exports {
			if err := c.Exports[i].check(); err != nil {
				t.Fatalf("accepted an invalid export: %v", err)
			}
		}
	})
}
