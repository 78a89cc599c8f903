package alert

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodRules = `
notifiers:
  - {name: sre-hook, type: webhook, url: https://hooks.example/indelible, secret_file: hook.secret}
  - {name: am, type: alertmanager, url: http://alertmanager:9093}
  - {name: chat, type: slack, url: https://hooks.slack.example/T000/B000/XXX}
rules:
  - name: secret-read-denied-burst
    match: {action: [secret.read, secrets.get], outcome: denied}
    where: 'event.metadata.namespace.startsWith("prod-")'
    kind: threshold
    threshold: {count: 5, window: 5m}
    group_by: [actor.id]
    cooldown: 30m
    severity: high
    notify: [sre-hook, am]
  - name: many-ips
    match: {action: login*}
    threshold: {count: 3, window: 10m, distinct: actor.ip}
    notify: chat
  - name: payments-audit-silent
    kind: absent
    match: {source: payments}
    for: 15m
    notify: [chat]
`

// writeRules writes a rules file (and a webhook secret beside it) and
// returns its path.
func writeRules(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hook.secret"), []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseGood(t *testing.T) {
	rs, err := LoadPath(writeRules(t, goodRules))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Notifiers) != 3 || len(rs.Rules) != 3 {
		t.Fatalf("got %d notifiers, %d rules", len(rs.Notifiers), len(rs.Rules))
	}
	r := rs.Rules[0]
	if r.Kind != KindThreshold || r.Count != 5 || r.Window != 5*time.Minute || r.Cooldown != 30*time.Minute ||
		r.Severity != "high" || len(r.Notify) != 2 || r.where == nil || len(r.Match) != 2 {
		t.Fatalf("rule 0: %+v", r)
	}
	if d := rs.Rules[1]; d.Distinct != "actor.ip" || d.Severity != "medium" || d.Notify[0] != "chat" {
		t.Fatalf("rule 1: %+v", d)
	}
	if a := rs.Rules[2]; a.Kind != KindAbsent || a.For != 15*time.Minute {
		t.Fatalf("rule 2: %+v", a)
	}
	if k := rs.Notifier("sre-hook").secret; len(k) != 24 {
		t.Fatalf("secret of %d bytes", len(k))
	}
}

// TestParseBad: every refused file names the line of the problem.
func TestParseBad(t *testing.T) {
	head := "notifiers:\n  - {name: am, type: alertmanager, url: http://am:9093}\nrules:\n"
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown rule field", head + "  - name: a\n    match: {action: x}\n    threshold: {count: 1, window: 1m}\n    colour: red\n", `:7: unknown field "colour"`},
		{"unknown top field", "rulez: []\n", `:1: unknown field "rulez"`},
		{"unknown match field", head + "  - name: a\n    match: {actoor: x}\n    threshold: {count: 1, window: 1m}\n", `:5: unknown field "actoor" in match`},
		{"unknown notifier field", "notifiers:\n  - {name: am, type: alertmanager, url: http://am:9093, token: x}\n", `:2: unknown field "token"`},
		{"bad duration", head + "  - name: a\n    match: {action: x}\n    threshold: {count: 1, window: 5 minutes}\n", `:6: threshold.window "5 minutes"`},
		{"negative duration", head + "  - name: a\n    match: {action: x}\n    threshold: {count: 1, window: 1m}\n    cooldown: -1m\n", `:7: cooldown "-1m"`},
		{"bad cel syntax", head + "  - name: a\n    match: {action: x}\n    where: 'event.actor.id =='\n    threshold: {count: 1, window: 1m}\n", `:6: rule "a": where:`},
		{"cel not bool", head + "  - name: a\n    match: {action: x}\n    where: 'event.actor'\n    threshold: {count: 1, window: 1m}\n", `want a bool`},
		{"cel unknown function", head + "  - name: a\n    where: 'event.action.shout()'\n    threshold: {count: 1, window: 1m}\n", `:5: rule "a": where:`},
		{"cel unknown variable", head + "  - name: a\n    where: 'evnt.action == \"x\"'\n    threshold: {count: 1, window: 1m}\n", `undeclared reference`},
		{"unknown notifier", head + "  - name: a\n    match: {action: x}\n    threshold: {count: 1, window: 1m}\n    notify: [am, pager]\n", `:7: notify: unknown notifier "pager"`},
		{"duplicate rule", head + "  - name: a\n    match: {action: x}\n    threshold: {count: 1, window: 1m}\n  - name: a\n    match: {action: y}\n    threshold: {count: 1, window: 1m}\n", `:7: rule "a" defined twice`},
		{"duplicate notifier", "notifiers:\n  - {name: am, type: alertmanager, url: http://am:9093}\n  - {name: am, type: slack, url: http://s}\n", `:3: notifier "am" defined twice`},
		{"bad name", head + "  - name: Big_Rule\n    match: {action: x}\n    threshold: {count: 1, window: 1m}\n", `:4: rule name "Big_Rule"`},
		{"no threshold", head + "  - name: a\n    match: {action: x}\n", `:4: rule "a": a threshold rule needs`},
		{"absent without for", head + "  - name: a\n    kind: absent\n    match: {action: x}\n", `:4: rule "a": an absent rule needs for`},
		{"bad kind", head + "  - name: a\n    kind: sometimes\n    match: {action: x}\n", `:5: rule "a": kind "sometimes"`},
		{"bad severity", head + "  - name: a\n    match: {action: x}\n    threshold: {count: 1, window: 1m}\n    severity: urgent\n", `:7: severity "urgent"`},
		{"bad count", head + "  - name: a\n    match: {action: x}\n    threshold: {count: 0, window: 1m}\n", `:6: threshold.count "0"`},
		{"bad group_by", head + "  - name: a\n    match: {action: x}\n    threshold: {count: 1, window: 1m}\n    group_by: [actor.name]\n", `:7: group_by: "actor.name"`},
		{"star inside", head + "  - name: a\n    match: {action: 'a*b'}\n    threshold: {count: 1, window: 1m}\n", `:5: match.action "a*b"`},
		{"match everything", head + "  - name: a\n    match: {action: '*'}\n    threshold: {count: 1, window: 1m}\n", `:5: match.action: "*" matches everything`},
		{"no match", head + "  - name: a\n    threshold: {count: 1, window: 1m}\n", `needs match or where`},
		{"webhook without secret", "notifiers:\n  - {name: h, type: webhook, url: http://h}\n", `:2: notifier "h": a webhook needs secret_file`},
		{"bad secret", "notifiers:\n  - {name: h, type: webhook, url: http://h, secret_file: rules.yaml}\n", `want whsec_<base64>`},
		{"bad type", "notifiers:\n  - {name: h, type: pager, url: http://h}\n", `:2: notifier "h": type "pager"`},
		{"bad url", "notifiers:\n  - {name: h, type: slack, url: ftp://h}\n", `:2: notifier "h": url "ftp://h"`},
		{"yaml syntax", "rules: [\n", `yaml:`},
		{"repeated key", head + "  - name: a\n    name: b\n    match: {action: x}\n    threshold: {count: 1, window: 1m}\n", `:5: field "name" given twice`},
		{"two documents", "rules: []\n---\nrules: []\n", `a second YAML document`},
		{"empty", "", `empty file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadPath(writeRules(t, tc.body))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.body)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
				t.Fatalf("the error quotes the secret: %v", err)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("notifiers:\n  - {name: am, type: alertmanager, url: http://am:9093}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte("rules:\n  - {name: x, match: {action: a}, threshold: {count: 1, window: 1m}, notify: am}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "README"), []byte("not yaml"), 0o600)
	rs, err := LoadPath(dir)
	if err != nil || len(rs.Rules) != 1 || len(rs.Notifiers) != 1 {
		t.Fatalf("%v %+v", err, rs)
	}
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("rules:\n  - {name: x, match: {action: b}, threshold: {count: 1, window: 1m}}\n"), 0o600)
	if _, err := LoadPath(dir); err == nil || !strings.Contains(err.Error(), "c.yaml:2: rule \"x\" defined twice (first at "+filepath.Join(dir, "b.yml")+":2)") {
		t.Fatalf("duplicate across files: %v", err)
	}
}
