package evidence

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// fixture is a log built in memory, from which bundles are cut.
type fixture struct {
	t      testing.TB
	key    tlogtest.Key
	wits   []note.Signer
	wkeys  []string
	lines  []Line // every entry of the log
	leaves [][]byte
	events []event.Event // zero for erased/shredded
	base   time.Time
}

func newFixture(t testing.TB, n int) *fixture {
	return newFixtureAt(t, n, time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC))
}

func newFixtureAt(t testing.TB, n int, base time.Time) *fixture {
	f := &fixture{t: t, key: tlogtest.NewKey(t, "example.com/evidence-test"), base: base}
	for k := range 2 {
		s, vk := tlogtest.NewWitnessKey(t, fmt.Sprintf("witness-%d.example", k))
		f.wits, f.wkeys = append(f.wits, s), append(f.wkeys, vk)
	}
	for i := range n {
		f.addEvent(event.Event{Action: []string{"login", "deploy", "secret.read"}[i%3], Outcome: []string{"success", "denied", ""}[i%3],
			Actor: &event.Actor{ID: fmt.Sprintf("user-%d", i%5)}}, "writer")
	}
	return f
}

// addEvent appends e, received 10 minutes after the previous one.
func (f *fixture) addEvent(e event.Event, by string) int64 {
	i := int64(len(f.lines))
	e.Finish(f.base.Add(time.Duration(i)*10*time.Minute), by)
	b, err := event.Canonical(e)
	if err != nil {
		f.t.Fatal(err)
	}
	var salt [event.SaltSize]byte
	copy(salt[:], fmt.Sprintf("salt-%028d", i))
	c := event.Commitment(salt, b)
	f.lines = append(f.lines, Line{Index: i, Commitment: c, Salt: salt, EventBytes: b})
	h := tlog.RecordHash(c[:])
	f.leaves = append(f.leaves, h[:])
	f.events = append(f.events, e)
	return i
}

// erase turns entry i into a tombstone and appends its indelible.erase
// record, as the server does.
func (f *fixture) erase(i int64, by, reason string) {
	at := f.base.Add(time.Duration(len(f.lines)) * 10 * time.Minute)
	md, _ := json.Marshal(map[string]any{"index": i, "reason": reason})
	f.addEvent(event.Event{Action: "indelible.erase", Actor: &event.Actor{ID: by}, Outcome: "success", Source: "indelible",
		Resource: &event.Resource{Type: "event", ID: fmt.Sprint(i)}, Metadata: md}, by)
	f.lines[i] = Line{Index: i, Commitment: f.lines[i].Commitment, Erased: &Erasure{At: at, By: by, Reason: reason}}
	f.events[i] = event.Event{}
}

func (f *fixture) shred(i int64) {
	f.lines[i] = Line{Index: i, Commitment: f.lines[i].Commitment, Shredded: DayOf(f.events[i].ReceivedAt)}
	f.events[i] = event.Event{}
}

func (f *fixture) rng(lo, hi int64) [][]byte {
	r := rangeFactory.NewEmptyRange(uint64(lo))
	for _, l := range f.leaves[lo:hi] {
		if err := r.Append(l, nil); err != nil {
			f.t.Fatal(err)
		}
	}
	return r.Hashes()
}

// checkpoint signs the tree of size n with the log key and the witnesses
// (the first cosigners of them).
func (f *fixture) checkpoint(n int64, cosigners int) []byte {
	var root tlog.Hash
	if n == 0 {
		root = itlog.EmptyRoot
	} else {
		r := rangeFactory.NewEmptyRange(0)
		for _, l := range f.leaves[:n] {
			r.Append(l, nil)
		}
		h, _ := r.GetRootHash(nil)
		copy(root[:], h)
	}
	signers := append([]note.Signer{f.key.Signer}, f.wits[:cosigners]...)
	b, err := itlog.SignCheckpoint(itlog.Checkpoint{Origin: f.key.Signer.Name(), Tree: tlog.Tree{N: n, Hash: root}}, signers...)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) hashAt(n int64) tlog.HashReaderFunc {
	return func(idx []int64) ([]tlog.Hash, error) {
		// A reference: recompute every stored hash from the leaves.
		out := make([]tlog.Hash, len(idx))
		for k, x := range idx {
			level, i := tlog.SplitStoredHashIndex(x)
			out[k] = subtree(f.leaves[i<<level : (i+1)<<level])
		}
		return out, nil
	}
}

// bundle cuts [a, b) against size n, with pinned size m (-1: none).
func (f *fixture) bundle(a, b, n, m int64, cosigners int) []byte {
	var sum Summary
	dig := NewDigest()
	var counts Counts
	win := Window{By: "index"}
	records := func(w io.Writer) error {
		for k := a; k < b; k++ {
			if _, err := w.Write(AppendLine(nil, &f.lines[k])); err != nil {
				return err
			}
		}
		return nil
	}
	for k := a; k < b; k++ {
		ln := &f.lines[k]
		switch ln.Kind() {
		case "open":
			counts.Open++
			sum.AddEvent(&f.events[k])
			r := f.events[k].ReceivedAt.Format(time.RFC3339Nano)
			if win.FirstReceivedAt == "" {
				win.FirstReceivedAt = r
			}
			win.LastReceivedAt = r
		case "erased":
			counts.Erased++
		default:
			counts.Shredded++
		}
		sum.AddLine(ln)
	}
	records(dig)
	var cons [][]byte
	if m >= 0 {
		p, err := tlog.ProveTree(n, m, f.hashAt(n))
		if err != nil {
			f.t.Fatal(err)
		}
		cons = [][]byte{}
		for _, h := range p {
			cons = append(cons, bytes.Clone(h[:]))
		}
	}
	var out bytes.Buffer
	size := int64(-2)
	err := Write(&out, Parts{
		OnSize: func(n int64) { size = n },
		Manifest: Manifest{Origin: f.key.Signer.Name(), LogKey: f.key.VKey, WitnessKeys: f.wkeys, Quorum: 2,
			Begin: a, End: b, Size: n, Window: win, Counts: counts},
		Checkpoint:    f.checkpoint(n, cosigners),
		Records:       records,
		RecordsDigest: dig,
		RangeProof:    RangeProof{Size: n, Begin: a, End: b, Left: f.rng(0, a), Right: f.rng(b, n)},
		Summary:       sum.Bytes(),
		Consistency:   cons,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if size != int64(out.Len()) {
		f.t.Fatalf("OnSize said %d bytes, Write wrote %d", size, out.Len())
	}
	return out.Bytes()
}

func (f *fixture) policy(quorum int) itlog.Policy {
	p, err := itlog.NewPolicy(f.key.VKey, f.wkeys, quorum)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// tarFile is one entry of a bundle, for tampering.
type tarFile struct {
	name string
	data []byte
}

func untar(t testing.TB, b []byte) []tarFile {
	var out []tarFile
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		d, _ := io.ReadAll(tr)
		out = append(out, tarFile{h.Name, d})
	}
}

// retar writes files back as a bundle; with fix, the manifest's hashes are
// recomputed (an attacker can: the manifest is not signed).
func retar(t testing.TB, files []tarFile, fix bool) []byte {
	if fix {
		var m Manifest
		if err := json.Unmarshal(files[0].data, &m); err != nil {
			t.Fatal(err)
		}
		for _, f := range files[1:] {
			s := sha256.Sum256(f.data)
			m.Files[f.name] = hex.EncodeToString(s[:])
		}
		files[0].data, _ = json.MarshalIndent(m, "", "  ")
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: int64(len(f.data)), Mode: 0o644, ModTime: epoch})
		tw.Write(f.data)
	}
	tw.Close()
	return out.Bytes()
}

func editFile(t testing.TB, b []byte, name string, fix bool, edit func([]byte) []byte) []byte {
	files := untar(t, b)
	for k := range files {
		if files[k].name == name {
			files[k].data = edit(bytes.Clone(files[k].data))
		}
	}
	return retar(t, files, fix)
}

func editLines(t testing.TB, b []byte, edit func(lines [][]byte) [][]byte) []byte {
	return editFile(t, b, FileRecords, true, func(d []byte) []byte {
		lines := bytes.SplitAfter(d, []byte("\n"))
		lines = lines[:len(lines)-1] // the empty tail
		return bytes.Join(edit(lines), nil)
	})
}

func mustVerify(t testing.TB, b []byte, opts Options) *Report {
	t.Helper()
	r, err := Verify(bytes.NewReader(b), opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

func TestVerifyGood(t *testing.T) {
	f := newFixture(t, 300)
	f.erase(20, "admin", "GDPR request 7")
	f.shred(3)
	f.shred(4)
	for _, c := range []struct{ a, b, n int64 }{{0, 0, 0}, {0, 301, 301}, {1, 300, 301}, {10, 60, 301}, {255, 257, 290}, {0, 256, 256}} {
		b := f.bundle(c.a, c.b, c.n, -1, 2)
		r := mustVerify(t, b, Options{Policy: f.policy(2)})
		if !r.OK() {
			t.Fatalf("[%d,%d) of %d: %v", c.a, c.b, c.n, r.Failures)
		}
		if r.Accounted != c.b-c.a {
			t.Errorf("accounted %d", r.Accounted)
		}
	}
	r := mustVerify(t, f.bundle(0, 301, 301, -1, 2), Options{Policy: f.policy(2)})
	want := "301/301 entries accounted for: 298 open, 1 erased, 2 shredded; witnessed 2/2"
	if r.SummaryLine() != want {
		t.Errorf("summary line %q, want %q", r.SummaryLine(), want)
	}
	if len(r.ErasedEntries) != 1 || r.ErasedEntries[0].EraseIndex != 300 || r.ErasedEntries[0].Erasure.Reason != "GDPR request 7" {
		t.Errorf("erased entries %+v", r.ErasedEntries)
	}
	if r.ShreddedDays["2026-11-30"] != 2 {
		t.Errorf("shredded days %v", r.ShreddedDays)
	}
	// Byte-identical for the same parts.
	if !bytes.Equal(f.bundle(10, 60, 301, -1, 2), f.bundle(10, 60, 301, -1, 2)) {
		t.Error("two builds of one bundle differ")
	}
	// With a pin.
	pin := f.checkpoint(100, 0)
	r = mustVerify(t, f.bundle(100, 200, 301, 100, 2), Options{Policy: f.policy(2), Pinned: pin})
	if !r.OK() || !strings.HasSuffix(r.SummaryLine(), "; consistent with pin 100") {
		t.Fatalf("pinned: %v %s", r.Failures, r.SummaryLine())
	}
}

// TestTamperMatrix: each tampering fails with its own message; the
// untampered bundle passes.
func TestTamperMatrix(t *testing.T) {
	f := newFixture(t, 40)
	f.erase(5, "admin", "user asked")
	good := f.bundle(2, 41, 41, 20, 2)
	policy := f.policy(2)
	pin := f.checkpoint(20, 2)
	if r := mustVerify(t, good, Options{Policy: policy, Pinned: pin}); !r.OK() {
		t.Fatalf("untampered bundle fails: %v", r.Failures)
	}
	other := newFixtureAt(t, 45, f.base.Add(time.Hour))
	foreign := AppendLine(nil, &other.lines[41])
	flip := func(lines [][]byte) [][]byte {
		// Both the event and event_bytes, consistently: only the
		// commitment can tell.
		ln, err := ParseLine(bytes.TrimSuffix(lines[5], []byte("\n")))
		if err != nil {
			t.Fatal(err)
		}
		k := bytes.Index(ln.EventBytes, []byte(`"action":"`)) + 10
		ln.EventBytes[k] ^= 0x01
		lines[5] = AppendLine(nil, &ln)
		return lines
	}
	otherKey := tlogtest.NewKey(t, f.key.Signer.Name())
	cases := []struct {
		name   string
		bundle []byte
		opts   Options
		want   string
	}{
		{"flipped byte in an event", editLines(t, good, flip), Options{}, "the commitment does not match the salt and event bytes"},
		{"flipped byte in an event's JSON", editLines(t, good, func(l [][]byte) [][]byte {
			k := bytes.Index(l[5], []byte(`"action":"`)) + 10
			l[5][k] ^= 0x20
			return l
		}), Options{}, "event and event_bytes differ"},
		{"dropped line", editLines(t, good, func(l [][]byte) [][]byte { return append(l[:7:7], l[8:]...) }), Options{}, "entry 9 is missing"},
		{"swapped lines", editLines(t, good, func(l [][]byte) [][]byte { l[7], l[8] = l[8], l[7]; return l }), Options{}, "entry 9 is out of order"},
		{"duplicated line", editLines(t, good, func(l [][]byte) [][]byte { return append(l[:8:8], append([][]byte{l[7]}, l[8:]...)...) }), Options{}, "entry 9 is duplicated"},
		{"foreign line", editLines(t, good, func(l [][]byte) [][]byte { return append(l, foreign) }), Options{}, "outside the bundle's range [2, 41): a foreign line"},
		{"foreign line in place", editLines(t, good, func(l [][]byte) [][]byte {
			fl := other.lines[9]
			l[7] = AppendLine(nil, &fl)
			return l
		}), Options{}, "give root"},
		{"checkpoint from another key", editFile(t, good, FileCheckpoint, true, func(b []byte) []byte {
			text, _, _ := itlog.SplitNote(b)
			cp, _ := itlog.ParseCheckpoint(string(text))
			nb, _ := itlog.SignCheckpoint(cp, otherKey.Signer)
			return nb
		}), Options{}, "no signature by the log key"},
		{"missing cosignature under a quorum", f.bundle(2, 41, 41, 20, 1), Options{}, "cosigned by 1 of 2 witnesses"},
		{"manifest hash mismatch", editFile(t, good, FileSummary, false, func(b []byte) []byte { return append(b, "x\n"...) }), Options{}, "SUMMARY.txt has SHA-256"},
		{"summary altered", editFile(t, good, FileSummary, true, func(b []byte) []byte { return bytes.Replace(b, []byte("\tlogin\t"), []byte("\tlogout\t"), 1) }), Options{}, "SUMMARY.txt does not match the records"},
		{"counts altered", editFile(t, good, FileManifest, false, func(b []byte) []byte { return bytes.Replace(b, []byte(`"erased": 1`), []byte(`"erased": 0`), 1) }), Options{}, "the manifest counts"},
		{"tombstone altered", editLines(t, good, func(l [][]byte) [][]byte {
			l[3] = bytes.Replace(l[3], []byte("user asked"), []byte("retention"), 1)
			return l
		}), Options{}, "its indelible.erase record 40 says"},
		{"inconsistent pin", good, Options{Pinned: other.checkpointWithKey(f.key, 20)}, "does not verify: the bundle's checkpoint is inconsistent with the pin"},
		{"pin forked at the same size", good, Options{Pinned: other.checkpointWithKey(f.key, 41)}, "the pin and the bundle's checkpoint have size 41 with different roots"},
		{"pin beyond", good, Options{Pinned: other.checkpointWithKey(f.key, 45)}, "is beyond the bundle's checkpoint 41"},
	}
	seen := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			opts.Policy = policy
			if opts.Pinned == nil {
				opts.Pinned = pin
			}
			r := mustVerify(t, c.bundle, opts)
			if r.OK() {
				t.Fatal("tampered bundle verifies")
			}
			var msgs []string
			for _, f := range r.Failures {
				msgs = append(msgs, f.String())
			}
			all := strings.Join(msgs, "\n")
			if !strings.Contains(all, c.want) {
				t.Fatalf("failures do not mention %q:\n%s", c.want, all)
			}
			if c.name != "manifest hash mismatch" && strings.Contains(all, "has SHA-256") {
				t.Errorf("the manifest was fixed up, but a hash failure is reported:\n%s", all)
			}
			if prev, ok := seen[c.want]; ok {
				t.Errorf("same message as %s", prev)
			}
			seen[c.want] = c.name
		})
	}
}

// checkpointWithKey signs this fixture's tree of size n with key: a log
// with the same key and another history.
func (f *fixture) checkpointWithKey(key tlogtest.Key, n int64) []byte {
	r := rangeFactory.NewEmptyRange(0)
	for _, l := range f.leaves[:n] {
		r.Append(l, nil)
	}
	h, _ := r.GetRootHash(nil)
	var root tlog.Hash
	copy(root[:], h)
	b, err := itlog.SignCheckpoint(itlog.Checkpoint{Origin: key.Signer.Name(), Tree: tlog.Tree{N: n, Hash: root}}, key.Signer)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func TestVerifyUnusable(t *testing.T) {
	f := newFixture(t, 10)
	good := f.bundle(0, 10, 10, -1, 2)
	for name, b := range map[string][]byte{
		"empty":              nil,
		"not tar":            []byte("hello"),
		"truncated":          good[:len(good)/2],
		"no manifest":        retar(t, untar(t, good)[1:], false),
		"bad manifest":       editFile(t, good, FileManifest, false, func([]byte) []byte { return []byte("{") }),
		"unknown field":      editFile(t, good, FileManifest, false, func(b []byte) []byte { return bytes.Replace(b, []byte(`"quorum"`), []byte(`"quorom"`), 1) }),
		"no newline":         editFile(t, good, FileRecords, false, func(b []byte) []byte { return b[:len(b)-1] }),
		"bad range proof":    editFile(t, good, FileRangeProof, false, func([]byte) []byte { return []byte("[]") }),
		"files out of order": func() []byte { fs := untar(t, good); fs[1], fs[2] = fs[2], fs[1]; return retar(t, fs, false) }(),
	} {
		if _, err := Verify(bytes.NewReader(b), Options{Policy: f.policy(0)}); !errors.Is(err, ErrUnusable) {
			t.Errorf("%s: %v, want ErrUnusable", name, err)
		}
	}
}

func TestLineRoundTrip(t *testing.T) {
	f := newFixture(t, 5)
	f.erase(1, "admin \"quoted\" <x>", "a\nreason")
	f.shred(2)
	for _, ln := range f.lines {
		b := AppendLine(nil, &ln)
		got, err := ParseLine(b[:len(b)-1])
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !bytes.Equal(AppendLine(nil, &got), b) {
			t.Fatalf("round trip of %s", b)
		}
		// Every strict prefix and every single-byte change is refused or
		// means another line.
		for k := 0; k < len(b)-1; k++ {
			if _, err := ParseLine(b[:k]); err == nil {
				t.Fatalf("prefix %q accepted", b[:k])
			}
		}
	}
}

// subtree is the RFC 6962 hash of a perfect subtree's leaf hashes.
func subtree(leaves [][]byte) tlog.Hash {
	if len(leaves) == 1 {
		var h tlog.Hash
		copy(h[:], leaves[0])
		return h
	}
	l, r := subtree(leaves[:len(leaves)/2]), subtree(leaves[len(leaves)/2:])
	return tlog.NodeHash(l, r)
}

// TestVerifyBlocks: records.ndjson is read in blocks of recordBlock bytes
// cut at line ends; lines of every size cross those boundaries, the fast
// and the slow canonical checks mix, and a byte flipped anywhere is found.
func TestVerifyBlocks(t *testing.T) {
	f := newFixture(t, 0)
	for i := range 1200 {
		e := event.Event{Action: "deploy", Outcome: "success", Actor: &event.Actor{ID: fmt.Sprintf("user-%d", i%7)}}
		switch i % 5 {
		case 1:
			e.Actor.ID = "zoë" // not ASCII: the slow path
		case 2:
			e.Metadata = []byte(`{"blob":"` + strings.Repeat("x", (i*997)%9000) + `"}`)
		}
		if i == 600 {
			e.Metadata = []byte(`{"blob":"` + strings.Repeat("y", event.MaxEventBytes-400) + `"}`)
		}
		f.addEvent(e, "writer")
	}
	n := int64(len(f.lines))
	good := f.bundle(0, n, n, -1, 2)
	if files := untar(t, good); len(files[2].data) < 4*recordBlock {
		t.Fatalf("records of %d bytes: too few blocks", len(files[2].data))
	}
	r := mustVerify(t, good, Options{Policy: f.policy(2)})
	if !r.OK() || r.Accounted != n || r.Open != n {
		t.Fatalf("%s: %v", r.SummaryLine(), r.Failures)
	}
	// Flip one byte of an event in lines around each block boundary.
	records := untar(t, good)[2].data
	for _, at := range []int{recordBlock - 1, recordBlock, recordBlock + 1, 2*recordBlock + 100, len(records) - 3} {
		// The byte after the next `"event":{"action":"` from at.
		k := bytes.Index(records[at:], []byte(`"event":{"action":"`))
		if k < 0 {
			k = bytes.LastIndex(records[:at], []byte(`"event":{"action":"`)) - at
		}
		pos := at + k + len(`"event":{"action":"`)
		b := editFile(t, good, FileRecords, true, func(d []byte) []byte { d[pos] ^= 1; return d })
		r := mustVerify(t, b, Options{Policy: f.policy(2)})
		if r.OK() || !strings.Contains(fmt.Sprint(r.Failures), "event and event_bytes differ") {
			t.Errorf("byte %d flipped: %v", pos, r.Failures)
		}
	}
	// A line over MaxLineBytes is unusable input.
	long := editFile(t, good, FileRecords, true, func(d []byte) []byte {
		return append(d, append(bytes.Repeat([]byte("z"), MaxLineBytes+1), '\n')...)
	})
	if _, err := Verify(bytes.NewReader(long), Options{Policy: f.policy(2)}); !errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), "a line over") {
		t.Errorf("a line over MaxLineBytes: %v", err)
	}
}

// TestWriteChanged: records whose second pass differs from the first (one
// byte, same length; or a byte less) fail Write with ErrChanged. (A byte
// more is refused by the tar writer itself.)
func TestWriteChanged(t *testing.T) {
	f := newFixture(t, 5)
	var first []byte
	for _, ln := range f.lines {
		first = AppendLine(first, &ln)
	}
	for name, second := range map[string][]byte{
		"same":      first,
		"a byte":    append(bytes.Clone(first[:40]), append([]byte{first[40] ^ 1}, first[41:]...)...),
		"truncated": first[:len(first)-1],
	} {
		dig := NewDigest()
		dig.Write(first)
		err := Write(io.Discard, Parts{
			Manifest:      Manifest{Origin: "o", Begin: 0, End: 5, Size: 5},
			Checkpoint:    f.checkpoint(5, 0),
			Records:       func(w io.Writer) error { _, err := w.Write(second); return err },
			RecordsDigest: dig,
			Summary:       []byte{},
		})
		if want := name != "same"; errors.Is(err, ErrChanged) != want {
			t.Errorf("%s: %v", name, err)
		}
	}
}
