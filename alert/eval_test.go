package alert

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"indelible.dev/event"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func mustRules(t *testing.T, body string) *Rules {
	t.Helper()
	rs, err := Parse("rules.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// ev is an event at t0+at by actor, with the given ip.
type ev struct {
	at     time.Duration
	actor  string
	ip     string
	action string // default "secret.read"
	meta   string
}

func (e ev) input(i int64) *Input {
	a := e.action
	if a == "" {
		a = "secret.read"
	}
	x := event.Event{Time: t0.Add(e.at), Actor: &event.Actor{ID: e.actor, IP: e.ip}, Action: a, Outcome: "denied",
		ReceivedAt: t0.Add(e.at), SubmittedBy: "w"}
	if e.meta != "" {
		x.Metadata = []byte(e.meta)
	}
	return &Input{Index: i, Event: x}
}

const burst = `
rules:
  - name: burst
    match: {action: secret.read, outcome: denied}
    threshold: {count: 3, window: 5m}
    group_by: [actor.id]
    cooldown: 30m
`

// TestThresholdTable runs one rule over event sequences and checks each
// firing: count-1, count, the window's edge, late events, cooldown, group
// split, distinct.
func TestThresholdTable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules string
		evs   []ev
		want  []string // "group:count:evidence" per firing, in order
	}{
		{"count-1 does not fire", burst, []ev{{0, "a", "", "", ""}, {time.Minute, "a", "", "", ""}}, nil},
		{"count fires", burst, []ev{{0, "a", "", "", ""}, {time.Minute, "a", "", "", ""}, {2 * time.Minute, "a", "", "", ""}}, []string{"a:3:[0 1 2]"}},
		{"just inside the window", burst, []ev{{0, "a", "", "", ""}, {time.Minute, "a", "", "", ""}, {5*time.Minute - 1, "a", "", "", ""}}, []string{"a:3:[0 1 2]"}},
		{"window edge excluded", burst, []ev{{0, "a", "", "", ""}, {time.Minute, "a", "", "", ""}, {5 * time.Minute, "a", "", "", ""}}, nil},
		{"window slides", burst, []ev{{0, "a", "", "", ""}, {time.Minute, "a", "", "", ""}, {5 * time.Minute, "a", "", "", ""}, {5*time.Minute + time.Second, "a", "", "", ""}}, []string{"a:3:[1 2 3]"}},
		{"late within bound counts where it falls", burst, []ev{{0, "a", "", "", ""}, {4 * time.Minute, "a", "", "", ""}, {3*time.Minute + 30*time.Second, "a", "", "", ""}}, []string{"a:3:[0 1 2]"}},
		{"late past bound not counted", burst, []ev{{0, "a", "", "", ""}, {4 * time.Minute, "a", "", "", ""}, {2*time.Minute + 59*time.Second, "a", "", "", ""}}, nil},
		{"late at the bound counts", burst, []ev{{0, "a", "", "", ""}, {4 * time.Minute, "a", "", "", ""}, {3 * time.Minute, "a", "", "", ""}}, []string{"a:3:[0 1 2]"}},
		{"late event completes a past window only", burst, []ev{{0, "a", "", "", ""}, {30 * time.Second, "a", "", "", ""}, {5*time.Minute + 20*time.Second, "a", "", "", ""}, {4*time.Minute + 50*time.Second, "a", "", "", ""}}, []string{"a:3:[0 1 3]"}},
		{"cooldown holds a second firing", burst, []ev{
			{0, "a", "", "", ""}, {time.Second, "a", "", "", ""}, {2 * time.Second, "a", "", "", ""},
			{10 * time.Minute, "a", "", "", ""}, {10*time.Minute + time.Second, "a", "", "", ""}, {10*time.Minute + 2*time.Second, "a", "", "", ""}}, []string{"a:3:[0 1 2]"}},
		{"after the cooldown it fires again", burst, []ev{
			{0, "a", "", "", ""}, {time.Second, "a", "", "", ""}, {2 * time.Second, "a", "", "", ""},
			{30*time.Minute + 2*time.Second, "a", "", "", ""}, {30*time.Minute + 3*time.Second, "a", "", "", ""}, {30*time.Minute + 4*time.Second, "a", "", "", ""}}, []string{"a:3:[0 1 2]", "a:3:[3 4 5]"}},
		{"cooldown edge: 1ns before", burst, []ev{
			{0, "a", "", "", ""}, {time.Second, "a", "", "", ""}, {2 * time.Second, "a", "", "", ""},
			{30 * time.Minute, "a", "", "", ""}, {30 * time.Minute, "a", "", "", ""}, {30*time.Minute + 2*time.Second - 1, "a", "", "", ""}}, []string{"a:3:[0 1 2]"}},
		{"groups split", burst, []ev{{0, "a", "", "", ""}, {time.Second, "b", "", "", ""}, {2 * time.Second, "a", "", "", ""}, {3 * time.Second, "b", "", "", ""}, {4 * time.Second, "a", "", "", ""}, {5 * time.Second, "b", "", "", ""}}, []string{"a:3:[0 2 4]", "b:3:[1 3 5]"}},
		{"cooldown is per group", burst, []ev{{0, "a", "", "", ""}, {time.Second, "a", "", "", ""}, {2 * time.Second, "a", "", "", ""}, {3 * time.Second, "b", "", "", ""}, {4 * time.Second, "b", "", "", ""}, {5 * time.Second, "b", "", "", ""}}, []string{"a:3:[0 1 2]", "b:3:[3 4 5]"}},
		{"other actions ignored", burst, []ev{{0, "a", "", "", ""}, {time.Second, "a", "", "secret.write", ""}, {2 * time.Second, "a", "", "", ""}}, nil},
		{"distinct counts values", `
rules:
  - name: ips
    match: {action: login*}
    threshold: {count: 3, window: 10m, distinct: actor.ip}
    group_by: actor.id
`, []ev{{0, "a", "1.1.1.1", "login", ""}, {time.Second, "a", "1.1.1.1", "login.ok", ""}, {2 * time.Second, "a", "2.2.2.2", "login", ""}, {3 * time.Second, "a", "", "login", ""}, {4 * time.Second, "a", "3.3.3.3", "login", ""}}, []string{"a:3:[0 1 2 3 4]"}},
		{"distinct count-1", `
rules:
  - name: ips
    match: {action: login*}
    threshold: {count: 3, window: 10m, distinct: actor.ip}
`, []ev{{0, "a", "1.1.1.1", "login", ""}, {time.Second, "b", "1.1.1.1", "login", ""}, {2 * time.Second, "c", "2.2.2.2", "login", ""}}, nil},
		{"group by two fields and metadata", `
rules:
  - name: two
    match: {action: secret.read}
    threshold: {count: 2, window: 1m}
    group_by: [actor.id, metadata.ns]
`, []ev{{0, "a", "", "", `{"ns":"prod"}`}, {time.Second, "a", "", "", `{"ns":"dev"}`}, {2 * time.Second, "a", "", "", `{"ns":"prod"}`}}, []string{"a/prod:2:[0 2]"}},
		{"where filters", `
rules:
  - name: w
    match: {action: secret.read}
    where: 'event.metadata.ns.startsWith("prod-")'
    threshold: {count: 2, window: 1m}
`, []ev{{0, "a", "", "", `{"ns":"prod-eu"}`}, {time.Second, "a", "", "", `{"ns":"dev"}`}, {2 * time.Second, "a", "", "", ``}, {3 * time.Second, "a", "", "", `{"ns":"prod-us"}`}}, []string{":2:[0 3]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEvaluator(mustRules(t, tc.rules), 0, t0)
			var got []string
			for i, x := range tc.evs {
				for _, f := range e.Evaluate(x.input(int64(i))) {
					got = append(got, fmt.Sprintf("%s:%d:%v", f.Group, f.Count, f.Evidence))
					if f.FirstIndex != f.Evidence[0] || f.LastIndex != f.Evidence[len(f.Evidence)-1] {
						t.Errorf("first/last %d %d of %v", f.FirstIndex, f.LastIndex, f.Evidence)
					}
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("firings %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRestartMidWindow: the state taken in the middle of a window and
// restored into a new evaluator continues exactly: the firing comes at the
// same event, once.
func TestRestartMidWindow(t *testing.T) {
	rs := mustRules(t, burst)
	evs := []ev{{0, "a", "", "", ""}, {time.Minute, "a", "", "", ""}, {2 * time.Minute, "a", "", "", ""}, {3 * time.Minute, "a", "", "", ""}}
	for cut := 0; cut <= len(evs); cut++ {
		e := NewEvaluator(rs, 0, t0)
		n := 0
		for i := 0; i < cut; i++ {
			n += len(e.Evaluate(evs[i].input(int64(i))))
		}
		st, err := e.State()
		if err != nil {
			t.Fatal(err)
		}
		e2 := NewEvaluator(mustRules(t, burst), 0, t0.Add(time.Hour))
		if err := e2.Restore(st, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for i := cut; i < len(evs); i++ {
			fs := e2.Evaluate(evs[i].input(int64(i)))
			if len(fs) > 0 && i != 2 {
				t.Fatalf("cut %d: fired at event %d", cut, i)
			}
			n += len(fs)
		}
		if n != 1 {
			t.Fatalf("cut %d: %d firings, want 1", cut, n)
		}
	}
	// A changed definition starts afresh.
	e := NewEvaluator(rs, 0, t0)
	e.Evaluate(evs[0].input(0))
	e.Evaluate(evs[1].input(1))
	st, _ := e.State()
	changed := mustRules(t, burst+"    severity: high\n") // severity does not shape the state
	e2 := NewEvaluator(changed, 0, t0)
	e2.Restore(st, t0)
	if len(e2.Evaluate(evs[2].input(2))) != 1 {
		t.Fatal("severity change dropped the state")
	}
	changed = mustRules(t, "\nrules:\n  - name: burst\n    match: {action: secret.read, outcome: denied}\n    threshold: {count: 3, window: 6m}\n    group_by: [actor.id]\n")
	e3 := NewEvaluator(changed, 0, t0)
	e3.Restore(st, t0)
	if len(e3.Evaluate(evs[2].input(2))) != 0 {
		t.Fatal("a changed window kept the old state")
	}
}

const silent = `
rules:
  - name: silent
    kind: absent
    match: {source: payments}
    for: 15m
`

func payment(i int64, at time.Duration) *Input {
	return &Input{Index: i, Event: event.Event{Time: t0.Add(at), ReceivedAt: t0.Add(at), Action: "pay", Source: "payments"}}
}

// TestAbsentTable: fire at exactly for, not before; once; resolve on the
// next match; a match resets the silence; restart keeps the state.
func TestAbsentTable(t *testing.T) {
	rs := mustRules(t, silent)
	e := NewEvaluator(rs, 0, t0)
	if fs := e.Tick(t0.Add(15*time.Minute - 1)); len(fs) != 0 {
		t.Fatalf("fired before for: %+v", fs)
	}
	fs := e.Tick(t0.Add(15 * time.Minute))
	if len(fs) != 1 || fs[0].Resolved || fs[0].FirstIndex != -1 || fs[0].Evidence != nil || fs[0].Window != 15*time.Minute {
		t.Fatalf("at for: %+v", fs)
	}
	if fs := e.Tick(t0.Add(time.Hour)); len(fs) != 0 {
		t.Fatalf("fired twice: %+v", fs)
	}
	// Restart while firing: the resolve still comes, once.
	st, _ := e.State()
	e = NewEvaluator(rs, 0, t0.Add(2*time.Hour))
	if err := e.Restore(st, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if fs := e.Tick(t0.Add(2 * time.Hour)); len(fs) != 0 {
		t.Fatalf("fired again after restart: %+v", fs)
	}
	fs = e.Evaluate(payment(7, 2*time.Hour))
	if len(fs) != 1 || !fs[0].Resolved || fs[0].Evidence[0] != 7 {
		t.Fatalf("resolve: %+v", fs)
	}
	if fs := e.Evaluate(payment(8, 2*time.Hour+time.Minute)); len(fs) != 0 {
		t.Fatalf("resolved twice: %+v", fs)
	}
	// Silence counts from the last match.
	if fs := e.Tick(t0.Add(2*time.Hour + 16*time.Minute - 1)); len(fs) != 0 {
		t.Fatalf("fired before for after the last match: %+v", fs)
	}
	fs = e.Tick(t0.Add(2*time.Hour + 16*time.Minute))
	if len(fs) != 1 || fs[0].Evidence[0] != 8 {
		t.Fatalf("second firing: %+v", fs)
	}
	// Other sources do not count.
	x := payment(9, 3*time.Hour)
	x.Event.Source = "billing"
	if fs := e.Evaluate(x); len(fs) != 0 {
		t.Fatalf("other source resolved: %+v", fs)
	}
}

func TestAbsentGroups(t *testing.T) {
	rs := mustRules(t, silent+"    group_by: [actor.id]\n")
	e := NewEvaluator(rs, 0, t0)
	if fs := e.Tick(t0.Add(time.Hour)); len(fs) != 0 {
		t.Fatalf("a group never seen fired: %+v", fs)
	}
	a, b := payment(0, 0), payment(1, 10*time.Minute)
	a.Event.Actor, b.Event.Actor = &event.Actor{ID: "a"}, &event.Actor{ID: "b"}
	e.Evaluate(a)
	e.Evaluate(b)
	fs := e.Tick(t0.Add(15 * time.Minute))
	if len(fs) != 1 || fs[0].Group != "a" {
		t.Fatalf("%+v", fs)
	}
}

// TestCELCostLimit: an expensive where is cut off and counts as no match.
func TestCELCostLimit(t *testing.T) {
	rs := mustRules(t, `
rules:
  - name: costly
    where: 'event.metadata.xs.all(a, event.metadata.xs.all(b, event.metadata.xs.all(c, a + b + c >= 0)))'
    threshold: {count: 1, window: 1m}
`)
	e := NewEvaluator(rs, 0, t0)
	xs := "["
	for i := range 200 {
		if i > 0 {
			xs += ","
		}
		xs += "1"
	}
	xs += "]"
	fs := e.Evaluate(ev{0, "a", "", "", `{"xs":` + xs + `}`}.input(0))
	if len(fs) != 0 || e.WhereErrors["costly"] != 1 {
		t.Fatalf("firings %v, where errors %d", fs, e.WhereErrors["costly"])
	}
	// Small input passes.
	if fs := e.Evaluate(ev{0, "a", "", "", `{"xs":[1,2]}`}.input(1)); len(fs) != 1 {
		t.Fatalf("small input: %v", fs)
	}
}

// TestActionIndex: rules are tried per action only when their match on
// action is exact, and in rule order, so firings come as without the index.
func TestActionIndex(t *testing.T) {
	rs := mustRules(t, `
rules:
  - {name: a, match: {action: [x, x, y]}, threshold: {count: 1, window: 1m}}
  - {name: b, match: {action: 'x*'}, threshold: {count: 1, window: 1m}}
  - {name: c, match: {source: s}, threshold: {count: 1, window: 1m}}
  - {name: d, match: {action: y}, threshold: {count: 1, window: 1m}}
`)
	e := NewEvaluator(rs, 0, t0)
	names := func(fs []Firing) string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Rule)
		}
		return fmt.Sprint(out)
	}
	for i, tc := range []struct{ action, source, want string }{
		{"x", "s", "[a b c]"}, {"y", "s", "[a c d]"}, {"xz", "s", "[b c]"}, {"z", "s", "[c]"}, {"y", "", "[a d]"},
	} {
		x := &Input{Index: int64(i), Event: event.Event{Time: t0.Add(time.Duration(i) * time.Hour), Action: tc.action, Source: tc.source}}
		if got := names(e.Evaluate(x)); got != tc.want {
			t.Errorf("%s/%s: %s, want %s", tc.action, tc.source, got, tc.want)
		}
	}
}
