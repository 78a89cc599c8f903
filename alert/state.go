package alert

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"indelible.dev/ledger"
)

// The engine's state is stored incrementally: the watermark and the rules'
// definitions in one small key, and each group of each rule in a key of
// its own, written only when a pass changed it. Every value is sealed
// (eventstore.Layer.SealState: it holds event values such as group names).
//
//	'A' 'w'                          the watermark: {"next": N, "defs": {rule: definition}}
//	'A' 'g' rule 0x00 blind(16)      one group: uvarint length, the group, then 't' + binary
//	                                 (threshold) or 'a' + JSON (absent)
//	'A' 's'                          the state of earlier versions, one blob: migrated on Start, then deleted
//
// A group is an event value (an actor's id): the key holds only a blind
// name of it (eventstore.Layer.StateName), the sealed value the group
// itself. Rule names, from the rules file, are [a-z0-9.-]: the first 0x00
// ends one.
const (
	kindWatermark = 'w'
	kindGroup     = 'g'
)

func watermarkKey() []byte { return []byte{prefixAlert, kindWatermark} }

// groupKey is the key of rule's group, whose blind name is blind.
func groupKey(rule string, blind []byte) []byte {
	k := make([]byte, 0, 3+len(rule)+len(blind))
	k = append(k, prefixAlert, kindGroup)
	k = append(k, rule...)
	k = append(k, 0)
	return append(k, blind...)
}

// ruleKeys bounds every group key of rule: [lo, hi).
func ruleKeys(rule string) (lo, hi []byte) {
	lo = append([]byte{prefixAlert, kindGroup}, rule...)
	lo = append(lo, 0)
	hi = append(bytes.Clone(lo[:len(lo)-1]), 1)
	return lo, hi
}

// watermark is the value at 'A' 'w'.
type watermark struct {
	Next int64             `json:"next"`
	Defs map[string]string `json:"defs"` // the definition each stored rule's groups were built under
}

// stateOp is one write of a state change: a Set (value non-nil), a Delete
// (value nil), or a DeleteRange of [key, hi).
type stateOp struct {
	key, value, hi []byte
}

// touch records that rule's group changed since the state was last
// written.
func (e *Evaluator) touch(rule, group string) {
	if e.dirty == nil {
		e.dirty = map[string]map[string]struct{}{}
	}
	d := e.dirty[rule]
	if d == nil {
		d = map[string]struct{}{}
		e.dirty[rule] = d
	}
	d[group] = struct{}{}
}

// reset records that every stored group of rule is to go (the rule was
// removed, or its definition changed); its groups in memory, if any, are
// then written again in full.
func (e *Evaluator) reset(rule string) {
	if e.resets == nil {
		e.resets = map[string]struct{}{}
	}
	e.resets[rule] = struct{}{}
	delete(e.dirty, rule)
}

// changes returns the writes that bring the stored groups up to date with
// the evaluator, sealed with seal, their keys named with blind (rule and
// group, 0x00 between). It does not forget them: call clean once they are
// committed.
func (e *Evaluator) changes(seal func([]byte) ([]byte, error), blind func([]byte) []byte) ([]stateOp, error) {
	var ops []stateOp
	var name []byte
	put := func(rule, group string) error {
		name = append(append(append(name[:0], rule...), 0), group...)
		k := groupKey(rule, blind(name))
		s := e.st[rule]
		var b []byte
		if s != nil {
			if g := s.Groups[group]; g != nil {
				b = encodeGroup(withGroup(group), g)
			} else if a := s.Absent[group]; a != nil {
				j, _ := json.Marshal(a)
				b = append(append(withGroup(group), 'a'), j...)
			}
		}
		if b == nil {
			ops = append(ops, stateOp{key: k})
			return nil
		}
		sealed, err := seal(b)
		if err != nil {
			return err
		}
		ops = append(ops, stateOp{key: k, value: sealed})
		return nil
	}
	for rule := range e.resets {
		lo, hi := ruleKeys(rule)
		ops = append(ops, stateOp{key: lo, hi: hi})
		if s := e.st[rule]; s != nil {
			for g := range s.Groups {
				if err := put(rule, g); err != nil {
					return nil, err
				}
			}
			for g := range s.Absent {
				if err := put(rule, g); err != nil {
					return nil, err
				}
			}
		}
	}
	for rule, groups := range e.dirty {
		for g := range groups {
			if err := put(rule, g); err != nil {
				return nil, err
			}
		}
	}
	return ops, nil
}

// clean forgets the changes: they are stored.
func (e *Evaluator) clean() {
	clear(e.dirty)
	clear(e.resets)
}

// changeAll marks every rule to be written in full (a migration from the
// single blob of earlier versions).
func (e *Evaluator) changeAll() {
	for name := range e.st {
		e.reset(name)
	}
}

// defs returns the definition of every rule in the state.
func (e *Evaluator) defs() map[string]string {
	m := make(map[string]string, len(e.st))
	for name, s := range e.st {
		m[name] = s.Def
	}
	return m
}

// restoreGroups replaces the state with the stored one: defs from the
// watermark key, and the groups scan calls back with (key without the
// 'A' 'g' prefix, opened value). Then the current rules apply as SetRules
// does: a rule whose definition changed starts afresh. Errors never name a
// group: it is an event value, kept out of log lines as out of keys.
func (e *Evaluator) restoreGroups(defs map[string]string, scan func(f func(k, v []byte) error) error, now time.Time) error {
	st := make(map[string]*ruleState, len(defs))
	leftover := map[string]bool{}
	for name, def := range defs {
		st[name] = &ruleState{Def: def}
	}
	err := scan(func(k, v []byte) error {
		rule, _, ok := bytes.Cut(k, []byte{0})
		if !ok {
			return fmt.Errorf("alert: a group key without a rule: %x", k)
		}
		n, w := binary.Uvarint(v)
		if w <= 0 || n > uint64(len(v)-w) {
			return fmt.Errorf("alert: the state of a group of rule %s: no group name", rule)
		}
		group := v[w : w+int(n)]
		v = v[w+int(n):]
		s := st[string(rule)]
		if s == nil {
			// A group of a rule the watermark does not list (they commit
			// together, so only a damaged store has one): dropped at the
			// next write.
			leftover[string(rule)] = true
			return nil
		}
		if len(v) == 0 {
			return fmt.Errorf("alert: empty state of a group of rule %s", rule)
		}
		switch v[0] {
		case 't':
			g, err := decodeGroup(v[1:])
			if err != nil {
				return fmt.Errorf("alert: the state of a group of rule %s: %w", rule, err)
			}
			if s.Groups == nil {
				s.Groups = map[string]*groupState{}
			}
			s.Groups[string(group)] = g
		case 'a':
			a := &absentState{}
			if err := json.Unmarshal(v[1:], a); err != nil {
				return fmt.Errorf("alert: the state of a group of rule %s: %w", rule, err)
			}
			if s.Absent == nil {
				s.Absent = map[string]*absentState{}
			}
			s.Absent[string(group)] = a
		default:
			return fmt.Errorf("alert: the state of a group of rule %s: unknown kind %q", rule, v[0])
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.clean()
	e.st = st
	e.SetRules(&Rules{Rules: e.rules}, now)
	for rule := range leftover {
		e.reset(rule)
	}
	return nil
}

// withGroup starts a group's value: its name, length first.
func withGroup(group string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(group)+64)
	b = binary.AppendUvarint(b, uint64(len(group)))
	return append(b, group...)
}

// encodeGroup appends to b a threshold group, compactly: 't', flags (1:
// Fired), Max, LastFire, the number of hits, and each hit as the
// differences of its time and index from the previous one's, and its
// distinct value.
func encodeGroup(b []byte, g *groupState) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(g.Hits)*6
	for _, h := range g.Hits {
		n += len(h.D)
	}
	b = slices.Grow(b, n)
	b = append(b, 't')
	var flags uint64
	if g.Fired {
		flags = 1
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendVarint(b, g.Max)
	b = binary.AppendVarint(b, g.LastFire)
	b = binary.AppendUvarint(b, uint64(len(g.Hits)))
	var pt, pi int64
	for _, h := range g.Hits {
		b = binary.AppendVarint(b, h.T-pt)
		b = binary.AppendVarint(b, h.I-pi)
		b = binary.AppendUvarint(b, uint64(len(h.D)))
		b = append(b, h.D...)
		pt, pi = h.T, h.I
	}
	return b
}

var errGroupEncoding = errors.New("malformed group state")

// decodeGroup reverses encodeGroup (without its leading 't').
func decodeGroup(b []byte) (*groupState, error) {
	r := groupReader{b: b}
	flags := r.uvarint()
	g := &groupState{Fired: flags&1 != 0, Max: r.varint(), LastFire: r.varint()}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) { // every hit takes 3 bytes at least
		return nil, errGroupEncoding
	}
	g.Hits = make([]hit, 0, n)
	var pt, pi int64
	for range n {
		h := hit{T: pt + r.varint(), I: pi + r.varint()}
		l := r.uvarint()
		if r.err != nil || l > uint64(len(r.b)) {
			return nil, errGroupEncoding
		}
		h.D = string(r.b[:l])
		r.b = r.b[l:]
		g.Hits = append(g.Hits, h)
		pt, pi = h.T, h.I
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errGroupEncoding
	}
	return g, nil
}

type groupReader struct {
	b   []byte
	err error
}

func (r *groupReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errGroupEncoding
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *groupReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errGroupEncoding
		return 0
	}
	r.b = r.b[n:]
	return v
}

// apply writes ops in w.
func applyOps(w ledger.Writer, ops []stateOp) error {
	for _, op := range ops {
		var err error
		switch {
		case op.hi != nil:
			err = w.DeleteRange(op.key, op.hi)
		case op.value == nil:
			err = w.Delete(op.key)
		default:
			err = w.Set(op.key, op.value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
