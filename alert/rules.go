// Package alert is Indelible's alert rules (docs/alerts.md): the rules
// file and its strict parser, a pure evaluator over committed events in
// index order (eval.go), the follower that runs it behind a watermark and
// records each firing as an indelible.alert.fired event in the same batch
// as its state (follower.go), and the at-least-once delivery of firings
// from a durable outbox (deliver.go).
package alert

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// Limits and defaults of the rules file.
const (
	MaxFileBytes     = 1 << 20 // one rules file
	MaxRules         = 1000
	MaxThreshold     = 10000 // threshold.count
	MaxWindow        = 7 * 24 * time.Hour
	MaxGroupBy       = 8
	DefaultLateness  = time.Minute
	MaxCELCost       = 10000 // CEL cost units per evaluation of a where
	maxExpressionLen = 4096
)

// Rule kinds.
const (
	KindThreshold = "threshold"
	KindAbsent    = "absent"
)

// Notifier types.
const (
	TypeWebhook      = "webhook"
	TypeAlertmanager = "alertmanager"
	TypeSlack        = "slack"
)

var severities = []string{"info", "low", "medium", "high", "critical"}

// MatchFields are the fields a rule's match may name: the filters of GET
// /v1/events (actor is actor.id, resource is resource.id).
var MatchFields = []string{"actor", "action", "resource", "outcome", "source"}

// ErrInvalid is the error of every refused rules file; the message names the
// file and line.
var ErrInvalid = errors.New("alert: invalid rules")

// Rules is a parsed, validated rules file (or directory of them).
type Rules struct {
	Notifiers []*Notifier
	Rules     []*Rule
}

// Notifier is where firings go.
type Notifier struct {
	Name, Type, URL string
	SecretFile      string // webhook: the file holding whsec_<base64>
	secret          []byte // webhook: the HMAC key (never logged)
}

// Rule is one alert rule.
type Rule struct {
	Name     string
	Kind     string // KindThreshold or KindAbsent
	Match    []Matcher
	Where    string
	Count    int           // threshold
	Window   time.Duration // threshold
	Distinct string        // threshold: a field path, or ""
	GroupBy  []string
	Cooldown time.Duration
	For      time.Duration // absent
	Severity string
	Notify   []string
	Tests    []RuleTest

	where cel.Program
	// def is the rule's definition, canonical: state of a rule whose
	// definition changed on reload is dropped.
	def string
	// file and line locate the rule for messages.
	file string
	line int
}

// Matcher is one field of a rule's match: the event matches if the field
// equals one of Values, or starts with one ending in *.
type Matcher struct {
	Field  string
	Values []string

	fi       int      // Field's position in MatchFields
	exact    []string // Values without a trailing *
	prefixes []string // Values with one, without it
}

// RuleTest is an inline test of a rule.
type RuleTest struct {
	Name   string
	Events string // NDJSON file, relative to the rules file
	Fires  int
	Groups []string
	line   int
}

var nameRE = regexp.MustCompile(`^[a-z0-9.-]{1,128}$`)

// LoadPath loads a rules file, or every *.yaml and *.yml file of a
// directory (in name order) as one set. Errors wrap ErrInvalid and name the
// file and line.
func LoadPath(path string) (*Rules, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		for _, e := range ents {
			if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
				files = append(files, filepath.Join(path, n))
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%w: %s: no *.yaml or *.yml file", ErrInvalid, path)
		}
	}
	p := &parser{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if len(data) > MaxFileBytes {
			return nil, fmt.Errorf("%w: %s: %d bytes, over the limit of %d", ErrInvalid, f, len(data), MaxFileBytes)
		}
		if err := p.parseFile(f, data); err != nil {
			return nil, err
		}
	}
	return p.finish()
}

// Parse parses one rules file's bytes; name is the file's name in messages
// (and tests' events files are relative to its directory).
func Parse(name string, data []byte) (*Rules, error) {
	p := &parser{}
	if err := p.parseFile(name, data); err != nil {
		return nil, err
	}
	return p.finish()
}

type parser struct {
	rs        Rules
	file      string
	notifiers map[string]int // name -> line
	rules     map[string]string
	refs      []ref
}

type ref struct {
	name, file string
	line       int
}

func (p *parser) errf(line int, format string, args ...any) error {
	return fmt.Errorf("%w: %s:%d: %s", ErrInvalid, p.file, line, fmt.Sprintf(format, args...))
}

func (p *parser) parseFile(name string, data []byte) error {
	p.file = name
	if p.notifiers == nil {
		p.notifiers, p.rules = map[string]int{}, map[string]string{}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			return p.errf(1, "empty file")
		}
		return fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return p.errf(extra.Line, "a second YAML document: one per file")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return p.mapping(root, "the file", map[string]func(*yaml.Node) error{
		"notifiers": func(v *yaml.Node) error { return p.list(v, "notifiers", p.notifier) },
		"rules":     func(v *yaml.Node) error { return p.list(v, "rules", p.rule) },
	})
}

// mapping walks a mapping node, refusing unknown and repeated keys.
func (p *parser) mapping(n *yaml.Node, what string, fields map[string]func(*yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return p.errf(n.Line, "%s must be a mapping", what)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			slices.Sort(known)
			return p.errf(k.Line, "unknown field %q in %s (known: %s)", k.Value, what, strings.Join(known, ", "))
		}
		if seen[k.Value] {
			return p.errf(k.Line, "field %q given twice in %s", k.Value, what)
		}
		seen[k.Value] = true
		if err := f(v); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) list(n *yaml.Node, what string, item func(*yaml.Node) error) error {
	if n.Kind != yaml.SequenceNode {
		return p.errf(n.Line, "%s must be a list", what)
	}
	for _, c := range n.Content {
		if err := item(c); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) str(n *yaml.Node, field string, dst *string) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return p.errf(n.Line, "%s must be a string", field)
	}
	*dst = n.Value
	return nil
}

func (p *parser) strs(n *yaml.Node, field string, dst *[]string) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := p.str(n, field, &s); err != nil {
			return err
		}
		*dst = []string{s}
		return nil
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return p.errf(n.Line, "%s must be a string or a non-empty list of strings", field)
	}
	for _, c := range n.Content {
		var s string
		if err := p.str(c, field, &s); err != nil {
			return err
		}
		*dst = append(*dst, s)
	}
	return nil
}

func (p *parser) duration(n *yaml.Node, field string, dst *time.Duration) error {
	var s string
	if err := p.str(n, field, &s); err != nil {
		return err
	}
	d, err := parseDuration(s)
	if err != nil || d <= 0 {
		return p.errf(n.Line, "%s %q: want a positive duration such as 30s, 5m, 1h or 1d", field, s)
	}
	if d > MaxWindow {
		return p.errf(n.Line, "%s %q: at most %s", field, s, MaxWindow)
	}
	*dst = d
	return nil
}

// parseDuration is time.ParseDuration plus a whole number of days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 3650 {
			return 0, errors.New("bad days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func (p *parser) integer(n *yaml.Node, field string, lo, hi int, dst *int) error {
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v < lo || v > hi {
		return p.errf(n.Line, "%s %q: want a whole number from %d to %d", field, n.Value, lo, hi)
	}
	*dst = v
	return nil
}

func (p *parser) notifier(n *yaml.Node) error {
	nt := &Notifier{}
	err := p.mapping(n, "a notifier", map[string]func(*yaml.Node) error{
		"name":        func(v *yaml.Node) error { return p.str(v, "name", &nt.Name) },
		"type":        func(v *yaml.Node) error { return p.str(v, "type", &nt.Type) },
		"url":         func(v *yaml.Node) error { return p.str(v, "url", &nt.URL) },
		"secret_file": func(v *yaml.Node) error { return p.str(v, "secret_file", &nt.SecretFile) },
	})
	if err != nil {
		return err
	}
	switch {
	case !nameRE.MatchString(nt.Name):
		return p.errf(n.Line, "notifier name %q: want 1 to 128 of [a-z0-9.-]", nt.Name)
	case p.notifiers[nt.Name] != 0:
		return p.errf(n.Line, "notifier %q defined twice (first at line %d)", nt.Name, p.notifiers[nt.Name])
	}
	switch nt.Type {
	case TypeWebhook, TypeAlertmanager, TypeSlack:
	default:
		return p.errf(n.Line, "notifier %q: type %q: want webhook, alertmanager or slack", nt.Name, nt.Type)
	}
	if !strings.HasPrefix(nt.URL, "http://") && !strings.HasPrefix(nt.URL, "https://") {
		return p.errf(n.Line, "notifier %q: url %q: want an http:// or https:// URL", nt.Name, nt.URL)
	}
	if nt.Type == TypeWebhook {
		if nt.SecretFile == "" {
			return p.errf(n.Line, "notifier %q: a webhook needs secret_file (whsec_<base64>)", nt.Name)
		}
		f := nt.SecretFile
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(p.file), f)
		}
		key, err := ReadSecret(f)
		if err != nil {
			return p.errf(n.Line, "notifier %q: %v", nt.Name, err)
		}
		nt.SecretFile, nt.secret = f, key
	} else if nt.SecretFile != "" {
		return p.errf(n.Line, "notifier %q: secret_file is for webhooks only", nt.Name)
	}
	p.notifiers[nt.Name] = n.Line
	p.rs.Notifiers = append(p.rs.Notifiers, nt)
	return nil
}

func (p *parser) rule(n *yaml.Node) error {
	r := &Rule{Kind: KindThreshold, Severity: "medium", file: p.file, line: n.Line}
	var whereLine, kindLine int
	var threshold, forNode *yaml.Node
	err := p.mapping(n, "a rule", map[string]func(*yaml.Node) error{
		"name": func(v *yaml.Node) error { return p.str(v, "name", &r.Name) },
		"kind": func(v *yaml.Node) error { kindLine = v.Line; return p.str(v, "kind", &r.Kind) },
		"match": func(v *yaml.Node) error {
			return p.mapping(v, "match", matchFields(p, r))
		},
		"where": func(v *yaml.Node) error { whereLine = v.Line; return p.str(v, "where", &r.Where) },
		"threshold": func(v *yaml.Node) error {
			threshold = v
			return p.mapping(v, "threshold", map[string]func(*yaml.Node) error{
				"count":    func(v *yaml.Node) error { return p.integer(v, "threshold.count", 1, MaxThreshold, &r.Count) },
				"window":   func(v *yaml.Node) error { return p.duration(v, "threshold.window", &r.Window) },
				"distinct": func(v *yaml.Node) error { return p.path(v, "threshold.distinct", &r.Distinct) },
			})
		},
		"group_by": func(v *yaml.Node) error {
			var fs []string
			if err := p.strs(v, "group_by", &fs); err != nil {
				return err
			}
			if len(fs) > MaxGroupBy {
				return p.errf(v.Line, "group_by: at most %d fields", MaxGroupBy)
			}
			for _, f := range fs {
				if err := checkPath(f); err != nil {
					return p.errf(v.Line, "group_by: %v", err)
				}
			}
			r.GroupBy = fs
			return nil
		},
		"cooldown": func(v *yaml.Node) error { return p.duration(v, "cooldown", &r.Cooldown) },
		"for":      func(v *yaml.Node) error { forNode = v; return p.duration(v, "for", &r.For) },
		"severity": func(v *yaml.Node) error {
			if err := p.str(v, "severity", &r.Severity); err != nil {
				return err
			}
			if !slices.Contains(severities, r.Severity) {
				return p.errf(v.Line, "severity %q: want one of %s", r.Severity, strings.Join(severities, ", "))
			}
			return nil
		},
		"notify": func(v *yaml.Node) error {
			if err := p.strs(v, "notify", &r.Notify); err != nil {
				return err
			}
			for _, name := range r.Notify {
				p.refs = append(p.refs, ref{name, p.file, v.Line})
			}
			return nil
		},
		"tests": func(v *yaml.Node) error { return p.list(v, "tests", func(t *yaml.Node) error { return p.test(r, t) }) },
	})
	if err != nil {
		return err
	}
	if !nameRE.MatchString(r.Name) {
		return p.errf(n.Line, "rule name %q: want 1 to 128 of [a-z0-9.-]", r.Name)
	}
	if where, ok := p.rules[r.Name]; ok {
		return p.errf(n.Line, "rule %q defined twice (first at %s)", r.Name, where)
	}
	switch r.Kind {
	case KindThreshold:
		if threshold == nil {
			return p.errf(n.Line, "rule %q: a threshold rule needs threshold: {count, window}", r.Name)
		}
		if r.Count == 0 || r.Window == 0 {
			return p.errf(threshold.Line, "rule %q: threshold needs both count and window", r.Name)
		}
		if forNode != nil {
			return p.errf(forNode.Line, "rule %q: for is for absent rules", r.Name)
		}
	case KindAbsent:
		if r.For == 0 {
			return p.errf(n.Line, "rule %q: an absent rule needs for", r.Name)
		}
		if threshold != nil {
			return p.errf(threshold.Line, "rule %q: threshold is for threshold rules", r.Name)
		}
	default:
		return p.errf(kindLine, "rule %q: kind %q: want threshold or absent", r.Name, r.Kind)
	}
	if len(r.Match) == 0 && r.Where == "" {
		return p.errf(n.Line, "rule %q: needs match or where (a rule on every event is a mistake)", r.Name)
	}
	if r.Where != "" {
		prg, err := compileWhere(r.Where)
		if err != nil {
			return p.errf(whereLine, "rule %q: where: %v", r.Name, err)
		}
		r.where = prg
	}
	r.def = r.definition()
	p.rules[r.Name] = fmt.Sprintf("%s:%d", p.file, n.Line)
	p.rs.Rules = append(p.rs.Rules, r)
	if len(p.rs.Rules) > MaxRules {
		return p.errf(n.Line, "more than %d rules", MaxRules)
	}
	return nil
}

func matchFields(p *parser, r *Rule) map[string]func(*yaml.Node) error {
	m := map[string]func(*yaml.Node) error{}
	for _, f := range MatchFields {
		m[f] = func(v *yaml.Node) error {
			mt := Matcher{Field: f}
			if err := p.strs(v, "match."+f, &mt.Values); err != nil {
				return err
			}
			for _, s := range mt.Values {
				if s == "" || s == "*" {
					return p.errf(v.Line, "match.%s: %q matches everything: leave the field out", f, s)
				}
				if strings.Contains(strings.TrimSuffix(s, "*"), "*") {
					return p.errf(v.Line, "match.%s %q: * only at the end (a prefix)", f, s)
				}
			}
			mt.fi = slices.Index(MatchFields, f)
			for _, s := range mt.Values {
				if p, ok := strings.CutSuffix(s, "*"); ok {
					mt.prefixes = append(mt.prefixes, p)
				} else {
					mt.exact = append(mt.exact, s)
				}
			}
			r.Match = append(r.Match, mt)
			return nil
		}
	}
	return m
}

func (p *parser) path(n *yaml.Node, field string, dst *string) error {
	if err := p.str(n, field, dst); err != nil {
		return err
	}
	if err := checkPath(*dst); err != nil {
		return p.errf(n.Line, "%s: %v", field, err)
	}
	return nil
}

// checkPath checks a field path of group_by and distinct: a field of the
// event (actor.id, resource.type, source, ...) or metadata.<key>....
func checkPath(s string) error {
	parts := strings.Split(s, ".")
	switch parts[0] {
	case "id", "time", "action", "outcome", "source", "reason", "received_at", "submitted_by":
		if len(parts) == 1 {
			return nil
		}
	case "actor":
		if len(parts) == 2 && (parts[1] == "id" || parts[1] == "type" || parts[1] == "ip") {
			return nil
		}
	case "resource":
		if len(parts) == 2 && (parts[1] == "id" || parts[1] == "type") {
			return nil
		}
	case "metadata":
		if len(parts) >= 2 && !slices.Contains(parts[1:], "") {
			return nil
		}
	}
	return fmt.Errorf("%q is not a field of an event (actor.id, actor.ip, action, resource.id, outcome, source, metadata.<key>, ...)", s)
}

func (p *parser) test(r *Rule, n *yaml.Node) error {
	t := RuleTest{line: n.Line, Fires: -1}
	err := p.mapping(n, "a test", map[string]func(*yaml.Node) error{
		"name":   func(v *yaml.Node) error { return p.str(v, "name", &t.Name) },
		"events": func(v *yaml.Node) error { return p.str(v, "events", &t.Events) },
		"expect": func(v *yaml.Node) error {
			return p.mapping(v, "expect", map[string]func(*yaml.Node) error{
				"fires":  func(v *yaml.Node) error { return p.integer(v, "expect.fires", 0, 1<<20, &t.Fires) },
				"groups": func(v *yaml.Node) error { return p.strs(v, "expect.groups", &t.Groups) },
			})
		},
	})
	if err != nil {
		return err
	}
	if t.Name == "" || t.Events == "" || t.Fires < 0 {
		return p.errf(n.Line, "a test needs name, events and expect.fires")
	}
	if !filepath.IsAbs(t.Events) {
		t.Events = filepath.Join(filepath.Dir(p.file), t.Events)
	}
	r.Tests = append(r.Tests, t)
	return nil
}

func (p *parser) finish() (*Rules, error) {
	for _, rf := range p.refs {
		if p.notifiers[rf.name] == 0 {
			return nil, fmt.Errorf("%w: %s:%d: notify: unknown notifier %q", ErrInvalid, rf.file, rf.line, rf.name)
		}
	}
	return &p.rs, nil
}

// definition is the rule's fields that shape its state, as one string.
func (r *Rule) definition() string {
	var match []string
	for _, m := range r.Match {
		match = append(match, m.Field+"="+strings.Join(m.Values, ","))
	}
	return fmt.Sprintf("%s|%v|%s|%d|%s|%s|%v|%s|%s", r.Kind, match, r.Where, r.Count, r.Window, r.Distinct, r.GroupBy, r.Cooldown, r.For)
}

// Notifier returns the named notifier, or nil.
func (rs *Rules) Notifier(name string) *Notifier {
	for _, n := range rs.Notifiers {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Line returns where the rule is defined, "file:line".
func (r *Rule) Line() string { return fmt.Sprintf("%s:%d", r.file, r.line) }
