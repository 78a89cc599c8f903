package auth

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"indelible.dev/internal/atomicfile"
)

// FilePersister keeps token records in one JSON file (a server uses
// <data>/tokens.json), mode 0600. Every Put rewrites the whole file
// atomically: a temporary file in the same directory is written and
// fsynced, renamed over the old one, and the directory fsynced, so a crash
// leaves either the old file or the new one, and Put is durable when it
// returns. The file holds names, scopes, times and the SHA-256 of each
// secret (hex), never a secret. Safe for concurrent use.
type FilePersister struct {
	path string

	mu     sync.Mutex
	recs   map[string]Record // the file's content once loaded
	loaded bool
}

// NewFilePersister returns the persister of the file at path (which need
// not exist yet: then there are no tokens).
func NewFilePersister(path string) *FilePersister { return &FilePersister{path: path} }

// tokenFile is the file's format.
type tokenFile struct {
	Tokens []fileRecord `json:"tokens"`
}

// fileRecord is a token's public record, its fields inline, and the hex
// SHA-256 of its secret.
type fileRecord struct {
	Token
	SHA256 string `json:"sha256"`
}

// Load reads the records (none if the file does not exist).
func (p *FilePersister) Load() ([]Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(); err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(p.recs))
	for _, r := range p.recs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// load reads the file into p.recs, once (p.mu held).
func (p *FilePersister) load() error {
	if p.loaded {
		return nil
	}
	recs := map[string]Record{}
	b, err := os.ReadFile(p.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("auth: reading %s: %w", p.path, err)
	}
	if err == nil {
		var f tokenFile
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("auth: reading %s: %w", p.path, err)
		}
		for _, fr := range f.Tokens {
			var r Record
			r.Token = fr.Token
			h, err := hex.DecodeString(fr.SHA256)
			if err != nil || len(h) != len(r.Hash) {
				return fmt.Errorf("auth: reading %s: token %q: bad sha256", p.path, fr.Name)
			}
			copy(r.Hash[:], h)
			if _, dup := recs[r.Name]; dup {
				return fmt.Errorf("auth: reading %s: token %q twice", p.path, r.Name)
			}
			recs[r.Name] = r
		}
	}
	p.recs, p.loaded = recs, true
	return nil
}

// Put stores r (replacing the record of the same name) durably.
func (p *FilePersister) Put(r Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(); err != nil {
		return err
	}
	next := make(map[string]Record, len(p.recs)+1)
	for k, v := range p.recs {
		next[k] = v
	}
	next[r.Name] = r
	var f tokenFile
	for _, v := range next {
		f.Tokens = append(f.Tokens, fileRecord{Token: v.Token, SHA256: hex.EncodeToString(v.Hash[:])})
	}
	slices.SortFunc(f.Tokens, func(a, b fileRecord) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: writing %s: %w", p.path, err)
	}
	if err := atomicfile.Write(p.path, append(b, '\n')); err != nil {
		return fmt.Errorf("auth: writing %s: %w", p.path, err)
	}
	p.recs = next
	return nil
}
