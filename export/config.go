// Package export streams the ledger's committed events into SIEMs (Splunk's
// HTTP Event Collector, Elasticsearch or OpenSearch bulk, any NDJSON
// endpoint): one follower per export, in index order, resuming from a
// cursor kept in the store (docs/exports.md).
package export

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"indelible.dev/api"
	"indelible.dev/eventstore"
)

// Sink types (DESIGN section 13).
const (
	TypeHTTPNDJSON  = "http_ndjson"
	TypeSplunkHEC   = "splunk_hec"
	TypeElasticBulk = "elastic_bulk"
)

// ErrInvalid wraps every error of a bad exports file.
var ErrInvalid = errors.New("export: invalid exports file")

// Filter selects the exported events: the fields of GET /v1/events, exact
// match, ANDed; empty fields match anything.
type Filter struct {
	Actor    string `yaml:"actor"`
	Action   string `yaml:"action"`
	Resource string `yaml:"resource"`
	Outcome  string `yaml:"outcome"`
	Source   string `yaml:"source"`
}

// Export is one entry of the exports file.
type Export struct {
	Name      string `yaml:"name"`
	Type      string `yaml:"type"`
	URL       string `yaml:"url"`
	TokenFile string `yaml:"token_file"`
	// Index is the SIEM's index name (Splunk index, Elasticsearch index).
	Index  string `yaml:"index"`
	Filter Filter `yaml:"filter"`

	token string // the token file's contents, trimmed
	query eventstore.Query
}

// File is the exports file: `exports: [{name, type, url, token_file,
// index, filter}]` and nothing else (DESIGN section 13).
type File struct {
	Exports []Export `yaml:"exports"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Load reads and checks the exports file at path, and reads every token
// file (which must not be readable by group or others).
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range f.Exports {
		x := &f.Exports[i]
		if x.TokenFile == "" {
			continue
		}
		st, err := os.Stat(x.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: export %q: token_file: %v", path, ErrInvalid, x.Name, err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s: %w: export %q: token_file %s is readable by others (mode %v): chmod 600 it",
				path, ErrInvalid, x.Name, x.TokenFile, st.Mode().Perm())
		}
		t, err := os.ReadFile(x.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: export %q: token_file: %v", path, ErrInvalid, x.Name, err)
		}
		x.token = strings.TrimSpace(string(t))
		if x.token == "" || strings.ContainsAny(x.token, "\r\n") {
			return nil, fmt.Errorf("%s: %w: export %q: token_file %s must hold one line, the token", path, ErrInvalid, x.Name, x.TokenFile)
		}
	}
	return f, nil
}

// Parse checks an exports file's contents: unknown keys, missing or bad
// values and repeated names are errors naming the line.
func Parse(b []byte) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := removedKeys(&doc); err != nil {
		return nil, err
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	lines := exportLines(&doc)
	line := func(i int) int {
		if i < len(lines) {
			return lines[i]
		}
		return 0
	}
	if len(f.Exports) == 0 {
		return nil, fmt.Errorf("%w: no exports (want exports: [{name, type, url, ...}])", ErrInvalid)
	}
	seen := map[string]int{}
	for i := range f.Exports {
		x := &f.Exports[i]
		if err := x.check(); err != nil {
			return nil, fmt.Errorf("%w: line %d: export %d (%q): %v", ErrInvalid, line(i), i+1, x.Name, err)
		}
		if l, ok := seen[x.Name]; ok {
			return nil, fmt.Errorf("%w: line %d: export name %q already used at line %d", ErrInvalid, line(i), x.Name, l)
		}
		seen[x.Name] = line(i)
	}
	return &f, nil
}

// removedKeys refuses the top-level keys earlier versions accepted, with
// what replaces them (the decoder's own error would only say "not found").
func removedKeys(doc *yaml.Node) error {
	if k, _ := topValue(doc, "public_url"); k != nil {
		return fmt.Errorf("%w: line %d: public_url is not a key of the exports file (it holds only exports: [...]): "+
			"remove it and give the server's public URL with serve --public-url URL, the base of the receipt URLs", ErrInvalid, k.Line)
	}
	return nil
}

// exportLines returns the line of each item of the exports sequence.
func exportLines(doc *yaml.Node) []int {
	_, v := topValue(doc, "exports")
	if v == nil || v.Kind != yaml.SequenceNode {
		return nil
	}
	var out []int
	for _, it := range v.Content {
		out = append(out, it.Line)
	}
	return out
}

// topValue returns the key and value nodes of key in the document's
// top-level mapping, or nils.
func topValue(doc *yaml.Node, key string) (k, v *yaml.Node) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func (x *Export) check() error {
	if !nameRE.MatchString(x.Name) {
		return errors.New("name: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	switch x.Type {
	case TypeHTTPNDJSON, TypeSplunkHEC, TypeElasticBulk:
	case "":
		return errors.New("type is required: http_ndjson, splunk_hec or elastic_bulk")
	default:
		return fmt.Errorf("type %q: want http_ndjson, splunk_hec or elastic_bulk", x.Type)
	}
	if x.URL == "" {
		return errors.New("url is required")
	}
	if _, err := baseURL(x.URL); err != nil {
		return fmt.Errorf("url: %v", err)
	}
	switch x.Type {
	case TypeSplunkHEC:
		if x.TokenFile == "" {
			return errors.New("token_file is required for splunk_hec (the HEC token)")
		}
	case TypeElasticBulk:
		if x.Index == "" {
			return errors.New("index is required for elastic_bulk (the index the documents are created in)")
		}
		if strings.ContainsAny(x.Index, "\"\\/*?<>| ,#") || strings.HasPrefix(x.Index, "_") {
			return fmt.Errorf("index %q: not a valid Elasticsearch index name", x.Index)
		}
	case TypeHTTPNDJSON:
		if x.Index != "" {
			return errors.New("index is not used by http_ndjson: remove it")
		}
	}
	v := url.Values{}
	for k, s := range map[string]string{"actor": x.Filter.Actor, "action": x.Filter.Action,
		"resource": x.Filter.Resource, "outcome": x.Filter.Outcome, "source": x.Filter.Source} {
		if s != "" {
			v.Set(k, s)
		}
	}
	q, err := api.ParseQuery(v)
	if err != nil {
		return fmt.Errorf("filter: %v", err)
	}
	x.query = q
	return nil
}

// baseURL parses an absolute http or https URL without query or fragment.
func baseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q: want an absolute http:// or https:// URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q: no query, fragment or credentials in the URL (credentials go in token_file)", s)
	}
	return u, nil
}
