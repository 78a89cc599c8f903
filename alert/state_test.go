package alert

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"indelible.dev/ledger"
)

// groupKeys returns the stored group keys of rule.
func (s *stack) groupKeys(rule string) [][]byte {
	s.t.Helper()
	lo, hi := ruleKeys(rule)
	var keys [][]byte
	if err := s.log.ScanExt(lo, hi, false, func(k, _ []byte) bool {
		keys = append(keys, bytes.Clone(k))
		return true
	}); err != nil {
		s.t.Fatal(err)
	}
	return keys
}

// TestStateMigratesLegacyBlob: a store holding the single state blob of
// earlier versions ('A' 's', two events of a window counted) opens: the
// blob becomes a watermark and group keys in one batch and is deleted, and
// the third event fires once, across another restart.
func TestStateMigratesLegacyBlob(t *testing.T) {
	h := newHook(t)
	rules := engineRules(t, h.srv.URL)
	s := newStack(t, Config{Rules: rules})
	s.close()

	// Write what the previous version stored after two denials of alice
	// (its format: persisted{next, rules: Evaluator.State()}), and none of
	// the new keys.
	s.open()
	idx := s.append(denied("alice"), denied("alice"))
	s.caughtUp()
	ev := NewEvaluator(rules, 0, time.Now())
	for _, i := range idx {
		rec, err := s.l.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		ev.Evaluate(&Input{Index: i, Event: rec.Event})
	}
	st, err := ev.State()
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := json.Marshal(persisted{Next: idx[1] + 1, Rules: st})
	sealed, err := s.l.SealState(stateLabel, blob)
	if err != nil {
		t.Fatal(err)
	}
	s.eng.crashed.Store(true) // no last snapshot in the new format
	s.eng.Close()
	if err := s.log.WriteExt(func(w ledger.Writer) error {
		lo, hi := []byte{prefixAlert, kindWatermark}, []byte{prefixAlert, kindWatermark + 1}
		if err := w.DeleteRange(lo, hi); err != nil {
			return err
		}
		lo, hi = []byte{prefixAlert, kindGroup}, []byte{prefixAlert, kindGroup + 1}
		if err := w.DeleteRange(lo, hi); err != nil {
			return err
		}
		return w.Set(legacyStateKey(), sealed)
	}); err != nil {
		t.Fatal(err)
	}
	s.l.Close()
	s.log.Close()
	s.eng = nil

	s.open()
	if _, err := s.log.GetExt(legacyStateKey()); err != ledger.ErrNotFound {
		t.Fatalf("the legacy blob is still there: %v", err)
	}
	if _, err := s.log.GetExt(watermarkKey()); err != nil {
		t.Fatalf("no watermark after the migration: %v", err)
	}
	if n := len(s.groupKeys("burst")); n != 1 {
		t.Fatalf("%d group keys of burst after the migration, want 1 (alice)", n)
	}
	s.restart()
	s.append(denied("alice"))
	s.waitAlerts(ActionFired, 1)
	s.restart()
	s.caughtUp()
	if n := len(s.alerts(ActionFired)); n != 1 {
		t.Fatalf("%d firings, want 1", n)
	}
	if !strings.Contains(s.logBuf.String(), "migrated the stored state") {
		t.Fatal("the migration is not logged")
	}
}

// TestStateIncremental: a write stores only the groups changed since the
// last one; a removed rule's groups go; the groups come back after a
// restart.
func TestStateIncremental(t *testing.T) {
	rs := mustRules(t, burst)
	e := NewEvaluator(rs, 0, t0)
	seal := func(b []byte) ([]byte, error) { return bytes.Clone(b), nil }
	blind := func(b []byte) []byte { return bytes.Clone(b) }
	e.clean()
	for i, a := range []string{"a", "b", "c"} {
		e.Evaluate(ev{time.Duration(i) * time.Second, a, "", "", ""}.input(int64(i)))
	}
	ops, err := e.changes(seal, blind)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 3 {
		t.Fatalf("%d writes for three new groups", len(ops))
	}
	e.clean()
	e.Evaluate(ev{10 * time.Second, "b", "", "", ""}.input(3))
	ops, _ = e.changes(seal, blind)
	if len(ops) != 1 || !bytes.HasSuffix(ops[0].key, []byte("burst\x00burst\x00b")) || ops[0].value == nil {
		t.Fatalf("writes after one event of b: %+v", ops)
	}
	// The value names its group and decodes to the same state.
	store := map[string][]byte{}
	e.changeAll()
	ops, _ = e.changes(seal, blind)
	for _, op := range ops {
		if op.hi == nil {
			store[string(op.key[2:])] = op.value
		}
	}
	e2 := NewEvaluator(rs, 0, t0)
	err = e2.restoreGroups(e.defs(), func(f func(k, v []byte) error) error {
		for k, v := range store {
			if err := f([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := e.State()
	b, _ := e2.State()
	if !bytes.Equal(a, b) {
		t.Fatalf("restored state differs:\n%s\n%s", a, b)
	}
	// A removed rule: one range delete of its keys.
	e.clean()
	e.SetRules(&Rules{}, t0)
	ops, _ = e.changes(seal, blind)
	if len(ops) != 1 || ops[0].hi == nil {
		t.Fatalf("writes after the rule was removed: %+v", ops)
	}
}

// TestEngineStateKeysFollowReload: on the engine, a reload that removes a
// rule deletes its stored groups; one that changes it restarts it from
// nothing (after a restart too).
func TestEngineStateKeysFollowReload(t *testing.T) {
	h := newHook(t)
	s := newStack(t, Config{Rules: engineRules(t, h.srv.URL), SnapshotEvery: time.Millisecond})
	s.append(denied("alice"), denied("bob"))
	s.caughtUp()
	waitKeys := func(rule string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(s.groupKeys(rule)) != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d group keys of %s, want %d", len(s.groupKeys(rule)), rule, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitKeys("burst", 2)
	s.eng.Reload(&Rules{Notifiers: s.eng.Rules().Notifiers})
	waitKeys("burst", 0)
	s.restart() // the configured rules are back, with nothing counted
	s.append(denied("alice"), denied("alice"))
	s.caughtUp()
	if n := len(s.alerts(ActionFired)); n != 0 {
		t.Fatalf("%d firings: the removed rule's state came back", n)
	}
	waitKeys("burst", 1)
	keys := s.groupKeys("burst")
	if slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Contains(k, []byte("alice")) }) {
		t.Fatal("a group key holds the group in plaintext")
	}
}

// FuzzDecodeGroup: the binary group encoding decodes what it encodes, and
// anything else fails cleanly.
func FuzzDecodeGroup(f *testing.F) {
	f.Add(encodeGroup(nil, &groupState{Max: 5, LastFire: 3, Fired: true, Hits: []hit{{T: 1, I: 2, D: "x"}, {T: 4, I: 9}}})[1:])
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeGroup(b)
		if err != nil {
			return
		}
		if again := encodeGroup(nil, g)[1:]; !bytes.Equal(again, b) {
			// Varints have one shortest form; a longer one decodes too.
			g2, err := decodeGroup(again)
			if err != nil || g2.Max != g.Max || g2.LastFire != g.LastFire || g2.Fired != g.Fired || !slices.Equal(g2.Hits, g.Hits) {
				t.Fatalf("%x decodes to %+v, which encodes to %x", b, g, again)
			}
		}
	})
}
