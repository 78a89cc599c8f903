package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"indelible.dev/event"
)

// Bounds of the evaluator's state, per rule.
const (
	MaxGroups      = 10000 // groups of one rule; beyond, new groups are not tracked (Dropped)
	MaxGroupHits   = 10000 // events kept in one group's window
	MaxEvidence    = 100   // indexes in a firing's evidence
	groupSeparator = "/"
)

// Input is one committed event, as the evaluator sees it.
type Input struct {
	Index int64
	Event event.Event
	// Bytes are the event's canonical bytes, if known (not needed: where,
	// group_by and distinct read Event).
	Bytes []byte

	obj    map[string]any
	have   objectNeeds
	fields [5]string // the values of MatchFields
	objErr error
	val    *eventVal  // event, as where sees it (celval.go)
	md     *rawObject // its metadata
	valBuf eventVal
	mdBuf  rawObject
}

// object returns the event as a JSON object (for group_by and distinct on
// metadata paths, and the tests), with at least the
// costly fields need asks for (metadata, which is decoded, and the times,
// which are formatted); the cheap ones are always there. It is built once
// per event and grown as rules ask for more.
func (in *Input) object(need objectNeeds) (map[string]any, error) {
	if in.obj == nil && in.objErr == nil {
		in.obj = eventObject(&in.Event)
	}
	if in.objErr != nil {
		return nil, in.objErr
	}
	e := &in.Event
	if missing := need &^ in.have; missing != 0 {
		if missing&needTime != 0 {
			in.obj["time"] = e.Time.UTC().Format(time.RFC3339Nano)
			if !e.ReceivedAt.IsZero() {
				in.obj["received_at"] = e.ReceivedAt.UTC().Format(time.RFC3339Nano)
			}
		}
		if missing&needMetadata != 0 && len(e.Metadata) > 0 {
			var md map[string]any
			if err := json.Unmarshal(e.Metadata, &md); err != nil {
				in.objErr = err
				return nil, err
			}
			in.obj["metadata"] = md
		}
		in.have |= missing
	}
	return in.obj, nil
}

// objectNeeds are the costly parts of the event object a where reads.
type objectNeeds uint8

const (
	needTime     objectNeeds = 1 << iota // time, received_at
	needMetadata                         // metadata
)

// eventObject is the event as a JSON object (what GET /v1/events shows)
// but for the costly fields (object adds them), built from its fields.
func eventObject(e *event.Event) map[string]any {
	m := make(map[string]any, 11)
	str := func(m map[string]any, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	str(m, "id", e.ID)
	if a := e.Actor; a != nil && *a != (event.Actor{}) {
		o := make(map[string]any, 3)
		str(o, "id", a.ID)
		str(o, "type", a.Type)
		str(o, "ip", a.IP)
		m["actor"] = o
	}
	str(m, "action", e.Action)
	if r := e.Resource; r != nil && *r != (event.Resource{}) {
		o := make(map[string]any, 2)
		str(o, "id", r.ID)
		str(o, "type", r.Type)
		m["resource"] = o
	}
	str(m, "outcome", e.Outcome)
	str(m, "source", e.Source)
	str(m, "reason", e.Reason)
	str(m, "submitted_by", e.SubmittedBy)
	return m
}

// Firing is a rule firing (or, Resolved, an absent rule's resolve).
type Firing struct {
	Rule     string
	Severity string
	Resolved bool
	Group    string
	Count    int           // events (or distinct values) that made it fire; absent: 0
	Window   time.Duration // threshold: the window; absent: for
	Evidence []int64       // up to MaxEvidence indexes, ascending
	// FirstIndex and LastIndex bound the evidence (both -1 for an absent
	// rule's firing when no event ever matched).
	FirstIndex, LastIndex int64
	// At is the time of the firing: the last evidence event's time
	// (threshold), the clock (absent), the resolving event's received_at.
	At time.Time
}

// Evaluator is the rules' state machine: Evaluate each committed event in
// index order, Tick the clock for absent rules. It does no I/O and reads no
// clock; it is not safe for concurrent use. Its State is what a restart
// needs to continue exactly where it was.
type Evaluator struct {
	rules    []*Rule
	lateness time.Duration
	st       map[string]*ruleState
	// byAction lists, for each action some rule matches exactly, the rules
	// an event with that action may match, in rule order; anyAction those
	// for any other action (rules with no exact action match).
	byAction  map[string][]*Rule
	anyAction []*Rule
	// Counters for metrics (not part of the state).
	WhereErrors map[string]int64 // by rule: where failed to evaluate (no match)
	Late        map[string]int64 // by rule: events later than the lateness bound, not counted
	Dropped     map[string]int64 // by rule: events of groups over MaxGroups
	// What changed since the state was last stored (state.go): groups by
	// rule, and rules whose stored groups all go.
	dirty  map[string]map[string]struct{}
	resets map[string]struct{}
}

// ruleState is one rule's state (JSON in the store).
type ruleState struct {
	Def    string                  `json:"def"`
	Groups map[string]*groupState  `json:"groups,omitempty"` // threshold
	Absent map[string]*absentState `json:"absent,omitempty"`
}

// groupState is one group of a threshold rule. Times are Unix
// nanoseconds (compact and fast in the stored state).
type groupState struct {
	Hits     []hit `json:"h,omitempty"` // by time, then index
	Max      int64 `json:"m"`           // the latest event time seen in the group
	LastFire int64 `json:"f,omitempty"` // the last firing's time; 0: never
	Fired    bool  `json:"x,omitempty"` // LastFire is set
}

type hit struct {
	T int64  `json:"t"`
	I int64  `json:"i"`
	D string `json:"d,omitempty"` // the distinct field's value
}

type absentState struct {
	LastSeen  time.Time `json:"last_seen"`
	LastIndex int64     `json:"last_index"` // -1: none yet
	Firing    bool      `json:"firing"`
	// FiredIndex is the index of the firing's event while Firing (set
	// once it is committed; -1 if unknown).
	FiredIndex int64 `json:"fired_index"`
}

// NewEvaluator returns an evaluator of rs, with absent rules' silence
// counted from now; lateness 0 means DefaultLateness.
func NewEvaluator(rs *Rules, lateness time.Duration, now time.Time) *Evaluator {
	if lateness <= 0 {
		lateness = DefaultLateness
	}
	e := &Evaluator{lateness: lateness, st: map[string]*ruleState{},
		WhereErrors: map[string]int64{}, Late: map[string]int64{}, Dropped: map[string]int64{}}
	e.SetRules(rs, now)
	return e
}

// SetRules replaces the rules. A rule keeps its state if its name and
// definition are unchanged; a new or changed rule starts afresh (an absent
// rule's silence counted from now); a removed rule's state goes.
func (e *Evaluator) SetRules(rs *Rules, now time.Time) {
	e.rules = rs.Rules
	e.byAction, e.anyAction = indexByAction(rs.Rules)
	st := make(map[string]*ruleState, len(rs.Rules))
	for _, r := range rs.Rules {
		if s := e.st[r.Name]; s != nil && s.Def == r.def {
			if s.Groups == nil && r.Kind == KindThreshold {
				s.Groups = map[string]*groupState{}
			}
			if s.Absent == nil && r.Kind == KindAbsent {
				s.Absent = map[string]*absentState{}
			}
			st[r.Name] = s
			continue
		}
		s := &ruleState{Def: r.def}
		if r.Kind == KindAbsent {
			s.Absent = map[string]*absentState{}
			if len(r.GroupBy) == 0 {
				s.Absent[""] = &absentState{LastSeen: now, LastIndex: -1, FiredIndex: -1}
			}
		} else {
			s.Groups = map[string]*groupState{}
		}
		st[r.Name] = s
		e.reset(r.Name) // new or changed: whatever is stored for it goes
	}
	for name := range e.st {
		if st[name] == nil {
			e.reset(name) // removed
		}
	}
	e.st = st
}

// Rules returns the rules evaluated.
func (e *Evaluator) Rules() []*Rule { return e.rules }

// State returns the evaluator's state, to be restored with Restore.
func (e *Evaluator) State() ([]byte, error) { return json.Marshal(e.st) }

// Restore replaces the state with one State returned, then applies the
// current rules to it as SetRules does.
func (e *Evaluator) Restore(b []byte, now time.Time) error {
	var st map[string]*ruleState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("alert: decoding the evaluator state: %w", err)
	}
	for name, s := range st {
		if s == nil {
			delete(st, name)
		}
	}
	e.st = st
	e.SetRules(&Rules{Rules: e.rules}, now)
	return nil
}

// Evaluate runs every rule over the committed event in, which must come
// after every event evaluated before (index order), and returns the
// firings, in rule order.
func (e *Evaluator) Evaluate(in *Input) []Firing {
	for i, f := range MatchFields {
		in.fields[i] = fieldValue(&in.Event, f)
	}
	var out []Firing
	rules, ok := e.byAction[in.Event.Action]
	if !ok {
		rules = e.anyAction
	}
	for _, r := range rules {
		if !r.matches(in, e) {
			continue
		}
		group := groupOf(r, in)
		if r.Kind == KindAbsent {
			if f, ok := e.seen(r, group, in); ok {
				out = append(out, f)
			}
			continue
		}
		if f, ok := e.count(r, group, in); ok {
			out = append(out, f)
		}
	}
	return out
}

// indexByAction returns the rules to try per action (see
// Evaluator.byAction): a rule whose match on action lists only exact
// values is tried only for those actions.
func indexByAction(rules []*Rule) (map[string][]*Rule, []*Rule) {
	exact := make([][]string, len(rules)) // nil: tried for every action
	actions := map[string]bool{}
	for i, r := range rules {
		for _, m := range r.Match {
			if m.Field == "action" && len(m.prefixes) == 0 {
				exact[i] = m.exact
				for _, a := range m.exact {
					actions[a] = true
				}
			}
		}
	}
	by := make(map[string][]*Rule, len(actions))
	var any []*Rule
	for i, r := range rules {
		if exact[i] == nil {
			any = append(any, r)
			for a := range actions {
				by[a] = append(by[a], r)
			}
			continue
		}
		for _, a := range exact[i] {
			if l := by[a]; len(l) == 0 || l[len(l)-1] != r { // [a, a] lists a twice
				by[a] = append(by[a], r)
			}
		}
	}
	return by, any
}

// Tick checks the absent rules at time now and returns their firings.
func (e *Evaluator) Tick(now time.Time) []Firing {
	var out []Firing
	for _, r := range e.rules {
		if r.Kind != KindAbsent {
			continue
		}
		s := e.st[r.Name]
		groups := make([]string, 0, len(s.Absent))
		for g := range s.Absent {
			groups = append(groups, g)
		}
		slices.Sort(groups) // a deterministic order
		for _, g := range groups {
			a := s.Absent[g]
			if a.Firing || now.Sub(a.LastSeen) < r.For {
				continue
			}
			a.Firing = true
			e.touch(r.Name, g)
			f := Firing{Rule: r.Name, Severity: r.Severity, Group: g, Window: r.For, FirstIndex: -1, LastIndex: -1, At: now}
			if a.LastIndex >= 0 {
				f.Evidence, f.FirstIndex, f.LastIndex = []int64{a.LastIndex}, a.LastIndex, a.LastIndex
			}
			out = append(out, f)
		}
	}
	return out
}

// seen records a matching event of an absent rule; it resolves the group
// if it was firing.
func (e *Evaluator) seen(r *Rule, group string, in *Input) (Firing, bool) {
	s := e.st[r.Name]
	a := s.Absent[group]
	if a == nil {
		if len(s.Absent) >= MaxGroups {
			e.Dropped[r.Name]++
			return Firing{}, false
		}
		a = &absentState{LastIndex: -1, FiredIndex: -1}
		s.Absent[group] = a
	}
	e.touch(r.Name, group)
	at := in.Event.ReceivedAt
	if at.IsZero() {
		at = in.Event.Time
	}
	if at.After(a.LastSeen) {
		a.LastSeen = at
	}
	a.LastIndex = in.Index
	if !a.Firing {
		return Firing{}, false
	}
	a.Firing, a.FiredIndex = false, -1
	return Firing{Rule: r.Name, Severity: r.Severity, Resolved: true, Group: group, Count: 1, Window: r.For,
		Evidence: []int64{in.Index}, FirstIndex: in.Index, LastIndex: in.Index, At: at}, true
}

// count adds a matching event to its group of a threshold rule and fires if
// some window of the rule's length holding it has count events (or
// distinct values).
func (e *Evaluator) count(r *Rule, group string, in *Input) (Firing, bool) {
	s := e.st[r.Name]
	g := s.Groups[group]
	t := in.Event.Time.UnixNano()
	if g == nil {
		if len(s.Groups) >= MaxGroups {
			e.sweep(r, s, t)
		}
		if len(s.Groups) >= MaxGroups {
			e.Dropped[r.Name]++
			return Firing{}, false
		}
		g = &groupState{Max: t}
		s.Groups[group] = g
	}
	// Bounded lateness: an event older than the group's latest by more than
	// the bound is not counted; one within it counts where its time falls.
	if t < g.Max-int64(e.lateness) {
		e.Late[r.Name]++
		return Firing{}, false
	}
	g.Max = max(g.Max, t)
	e.touch(r.Name, group)
	h := hit{T: t, I: in.Index}
	if r.Distinct != "" {
		h.D = pathValue(in, r.Distinct)
	}
	pos, _ := slices.BinarySearchFunc(g.Hits, h, cmpHit)
	g.Hits = slices.Insert(g.Hits, pos, h)
	// Drop what no window with a countable event can hold any more.
	horizon := g.Max - int64(r.Window) - int64(e.lateness)
	cut := 0
	for cut < len(g.Hits) && g.Hits[cut].T <= horizon {
		cut++
	}
	if len(g.Hits)-cut > MaxGroupHits {
		cut = len(g.Hits) - MaxGroupHits
	}
	if cut > 0 {
		g.Hits = slices.Delete(g.Hits, 0, cut)
		pos -= cut
		if pos < 0 {
			return Firing{}, false // it fell off at once
		}
	}
	// The windows [start, start+window) that hold h start at an event in
	// (t-window, t]. Take the earliest that reaches the threshold; the end
	// of the window only moves forward with its start.
	w := int64(r.Window)
	si := pos
	for si > 0 && g.Hits[si-1].T > t-w {
		si--
	}
	ei := si
	for ; si <= pos; si++ {
		end := g.Hits[si].T + w
		for ei < len(g.Hits) && g.Hits[ei].T < end {
			ei++
		}
		if ei-si < r.Count {
			continue // not even that many events
		}
		n := measure(r, g.Hits[si:ei])
		if n < r.Count {
			continue
		}
		set := g.Hits[si:ei]
		last := set[len(set)-1].T
		if g.Fired && last < g.LastFire+int64(r.Cooldown) {
			return Firing{}, false // cooling down: the events stay and may fire later
		}
		f := Firing{Rule: r.Name, Severity: r.Severity, Group: group, Count: n, Window: r.Window, At: time.Unix(0, last).UTC()}
		idx := make([]int64, len(set))
		for j, x := range set {
			idx[j] = x.I
		}
		slices.Sort(idx)
		f.FirstIndex, f.LastIndex = idx[0], idx[len(idx)-1]
		if len(idx) > MaxEvidence {
			idx = idx[len(idx)-MaxEvidence:]
		}
		f.Evidence = idx
		// The firing consumes its events: the next needs count new ones.
		g.Hits = slices.Delete(g.Hits, si, ei)
		g.LastFire, g.Fired = last, true
		return f, true
	}
	return Firing{}, false
}

// sweep drops the groups of a threshold rule that hold no countable event
// and are not cooling down at time t.
func (e *Evaluator) sweep(r *Rule, s *ruleState, t int64) {
	for k, g := range s.Groups {
		if len(g.Hits) == 0 || t > g.Max+int64(r.Window)+int64(e.lateness) {
			if !g.Fired || t > g.LastFire+int64(r.Cooldown) {
				delete(s.Groups, k)
				e.touch(r.Name, k)
			}
		}
	}
}

func cmpHit(a, b hit) int {
	switch {
	case a.T < b.T:
		return -1
	case a.T > b.T:
		return 1
	case a.I < b.I:
		return -1
	case a.I > b.I:
		return 1
	}
	return 0
}

// measure is what a threshold counts in hits: events, or distinct non-empty
// values of the distinct field.
func measure(r *Rule, hits []hit) int {
	if r.Distinct == "" {
		return len(hits)
	}
	seen := make(map[string]struct{}, len(hits))
	for _, h := range hits {
		if h.D != "" {
			seen[h.D] = struct{}{}
		}
	}
	return len(seen)
}

// matches reports whether in passes the rule's match and where.
func (r *Rule) matches(in *Input, e *Evaluator) bool {
	for i := range r.Match {
		m := &r.Match[i]
		v := in.fields[m.fi]
		ok := false
		for _, want := range m.exact {
			if v == want {
				ok = true
				break
			}
		}
		for _, p := range m.prefixes {
			if ok {
				break
			}
			ok = strings.HasPrefix(v, p)
		}
		if !ok {
			return false
		}
	}
	if r.where == nil {
		return true
	}
	out, _, err := r.where.Eval(in) // in is the activation: event, built as read
	if err != nil {
		// A missing key, a type mismatch, or the cost limit: no match.
		e.WhereErrors[r.Name]++
		return false
	}
	b, ok := out.Value().(bool)
	return ok && b
}

// fieldValue is the value of a match field (the filters of GET /v1/events).
func fieldValue(ev *event.Event, field string) string {
	switch field {
	case "actor":
		if ev.Actor != nil {
			return ev.Actor.ID
		}
	case "resource":
		if ev.Resource != nil {
			return ev.Resource.ID
		}
	case "action":
		return ev.Action
	case "outcome":
		return ev.Outcome
	case "source":
		return ev.Source
	}
	return ""
}

// groupOf is the group of in under r: its group_by values joined with /.
func groupOf(r *Rule, in *Input) string {
	switch len(r.GroupBy) {
	case 0:
		return ""
	case 1:
		return pathValue(in, r.GroupBy[0])
	}
	vs := make([]string, len(r.GroupBy))
	for i, p := range r.GroupBy {
		vs[i] = pathValue(in, p)
	}
	return strings.Join(vs, groupSeparator)
}

// pathValue is the plain value of a field path in the event: a string as
// is, a number as written, anything else as JSON, "" if absent.
func pathValue(in *Input, path string) string {
	ev := &in.Event
	switch path {
	case "actor.id", "actor", "resource", "resource.id", "action", "outcome", "source":
		return fieldValue(ev, strings.TrimSuffix(path, ".id"))
	case "actor.ip":
		if ev.Actor != nil {
			return ev.Actor.IP
		}
		return ""
	case "actor.type":
		if ev.Actor != nil {
			return ev.Actor.Type
		}
		return ""
	case "resource.type":
		if ev.Resource != nil {
			return ev.Resource.Type
		}
		return ""
	case "id":
		return ev.ID
	case "reason":
		return ev.Reason
	case "submitted_by":
		return ev.SubmittedBy
	case "time":
		return ev.Time.UTC().Format(time.RFC3339Nano)
	case "received_at":
		if ev.ReceivedAt.IsZero() {
			return ""
		}
		return ev.ReceivedAt.UTC().Format(time.RFC3339Nano)
	}
	if v, ok := metadataPath(in.Event.Metadata, path); ok {
		return v
	}
	return decodedPathValue(in, path)
}

// metadataPath is the plain value of a metadata.<key>... path read from the
// raw JSON without decoding it, when that is a string, a number, a bool or
// null; ok false leaves the rest (objects, arrays, bad JSON, other paths)
// to decodedPathValue.
func metadataPath(md []byte, path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "metadata.")
	if !ok || rest == "" || len(md) == 0 {
		return "", false
	}
	raw := md
	for rest != "" {
		var k string
		k, rest, _ = strings.Cut(rest, ".")
		v, found, err := jsonMember(raw, k)
		if err != nil {
			return "", false
		}
		if !found {
			return "", true
		}
		raw = v
	}
	switch raw[0] {
	case '"':
		if s := raw[1 : len(raw)-1]; bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			return string(s), true
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case 't':
		return "true", true
	case 'f':
		return "false", true
	case 'n':
		return "", true
	case '{', '[':
		return "", false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return "", false
	}
	return strconv.FormatFloat(f, 'f', -1, 64), true
}

// decodedPathValue is pathValue from the decoded event object.
func decodedPathValue(in *Input, path string) string {
	obj, err := in.object(needMetadata)
	if err != nil {
		return ""
	}
	var v any = obj
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}
