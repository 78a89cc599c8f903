// Package evidence reads, verifies and writes evidence bundles: one file
// holding the complete population of an audit log's events for a period
// (an index range [begin, end) of the log), with what proves that none is
// missing, altered, added or reordered, checkable with no network and no
// trust in the server (docs/evidence.md).
//
// A bundle is a tar file whose entries come in this order, each tar header
// with a fixed mtime (the Unix epoch), uid and gid 0 and mode 0644, so that
// the same range against the same checkpoint gives the same bytes:
//
//	MANIFEST.json      origin, log_key, witness_keys, quorum, begin, end,
//	                   size, window, counts, files (name -> hex SHA-256)
//	checkpoint         the signed note of tree size N = size, with its
//	                   cosignatures (c2sp.org/tlog-checkpoint)
//	records.ndjson     one line per index begin..end-1: an event record
//	                   (index, event, event_bytes, salt, commitment), or an
//	                   erased entry's tombstone, or a shredded entry
//	range.proof        the compact ranges [0, begin) and [end, N) (JSON)
//	SUMMARY.txt        day, action, outcome, count per line, sorted
//	consistency.proof  (optional) the RFC 6962 consistency proof from the
//	                   size of the auditor's pinned checkpoint to N
//
// Every log entry is a salted commitment to an event:
//
//	commitment = SHA-256("indelible/event/v1" || 0x00 || salt || event_bytes)
//
// and its leaf hash is RFC 6962's. The verifier (Verify) recomputes every
// open record's commitment, hashes the end-begin leaves into a compact range
// between the left and right ranges of range.proof, and compares the root
// with the checkpoint's, which it checks against the log's key and a witness
// policy. The package is pure: Verify reads an io.Reader, Write writes an
// io.Writer, and nothing else is touched.
package evidence

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"indelible.dev/api"
	"indelible.dev/event"
)

// File names, in the order they appear in a bundle.
const (
	FileManifest    = "MANIFEST.json"
	FileCheckpoint  = "checkpoint"
	FileRecords     = "records.ndjson"
	FileRangeProof  = "range.proof"
	FileSummary     = "SUMMARY.txt"
	FileConsistency = "consistency.proof"
)

// Limits on what a reader accepts (a bundle is untrusted input).
const (
	MaxManifestBytes    = 1 << 20
	MaxCheckpointBytes  = 1 << 20
	MaxRangeProofBytes  = 64 << 10
	MaxSummaryBytes     = 64 << 20
	MaxConsistencyBytes = 64 << 10
	// MaxLineBytes bounds one line of records.ndjson: an event of
	// event.MaxEventBytes appears twice (as JSON and in base64).
	MaxLineBytes = 4 * event.MaxEventBytes
)

// Window says how a bundle's range was chosen. By is "index" (the range was
// asked by index) or "received_at" (a time window [Since, Until), mapped to
// indexes by the events' received_at: the range starts at the first entry
// received at or after Since and ends before the first received at or after
// Until). FirstReceivedAt and LastReceivedAt are those of the first and last
// open record inside the range (absent if it holds none).
type Window struct {
	By              string `json:"by"`
	Since           string `json:"since,omitempty"`
	Until           string `json:"until,omitempty"`
	FirstReceivedAt string `json:"first_received_at,omitempty"`
	LastReceivedAt  string `json:"last_received_at,omitempty"`
}

// Counts are the entries of a bundle by kind; they sum to end - begin.
type Counts struct {
	Open     int64 `json:"open"`
	Erased   int64 `json:"erased"`
	Shredded int64 `json:"shredded"`
}

// Manifest is MANIFEST.json. It is not signed: a verifier trusts none of it
// but checks each field against what the signed checkpoint proves.
type Manifest struct {
	Origin      string            `json:"origin"`
	LogKey      string            `json:"log_key"`
	WitnessKeys []string          `json:"witness_keys"`
	Quorum      int               `json:"quorum"`
	Begin       int64             `json:"begin"`
	End         int64             `json:"end"`
	Size        int64             `json:"size"`
	Window      Window            `json:"window"`
	Counts      Counts            `json:"counts"`
	Files       map[string]string `json:"files"`
}

// RangeProof is range.proof: the compact ranges [0, Begin) (Left) and
// [End, Size) (Right), each hash the root of a perfect subtree, left to
// right (transparency-dev/merkle's compact ranges), base64 in JSON.
type RangeProof struct {
	Size  int64    `json:"size"`
	Begin int64    `json:"begin"`
	End   int64    `json:"end"`
	Left  [][]byte `json:"left"`
	Right [][]byte `json:"right"`
}

// Erasure is what an erased entry's line keeps of its tombstone: when, by
// which token, why. At is the erasure's indelible.erase event's received_at.
type Erasure struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
}

// Line is one line of records.ndjson: the entry at Index, whose log entry
// is Commitment, and exactly one of an opening (Salt, EventBytes: an open
// record), Erased (a tombstone) or Shredded (the UTC day, "2006-01-02",
// whose data key retention destroyed).
type Line struct {
	Index      int64
	Commitment [32]byte
	Salt       [event.SaltSize]byte
	EventBytes []byte
	Erased     *Erasure
	Shredded   string
}

// Kind returns "open", "erased" or "shredded".
func (ln *Line) Kind() string {
	switch {
	case ln.Erased != nil:
		return "erased"
	case ln.Shredded != "":
		return "shredded"
	}
	return "open"
}

var errLine = errors.New("evidence: malformed line")

// AppendLine appends ln's line, with its newline, to b. An open record is
// the record of the HTTP API (docs/events.md): {"index","event",
// "event_bytes","salt","commitment"}; a tombstone {"index","commitment",
// "erased":{"at","by","reason"}}; a shredded entry {"index","commitment",
// "shredded":"<day>"}.
func AppendLine(b []byte, ln *Line) []byte {
	if ln.Erased == nil && ln.Shredded == "" {
		// An open record's bytes are the events API's (api.AppendRecord).
		r := api.Record{Index: ln.Index, EventBytes: ln.EventBytes, Salt: ln.Salt[:], Commitment: ln.Commitment[:]}
		return append(api.AppendRecord(b, &r), '\n')
	}
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, ln.Index, 10)
	switch {
	case ln.Erased != nil:
		b = appendCommitment(b, ln)
		b = append(b, `,"erased":{"at":`...)
		b = appendJSONString(b, ln.Erased.At.UTC().Format(time.RFC3339Nano))
		b = append(b, `,"by":`...)
		b = appendJSONString(b, ln.Erased.By)
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, ln.Erased.Reason)
		b = append(b, "}}\n"...)
	case ln.Shredded != "":
		b = appendCommitment(b, ln)
		b = append(b, `,"shredded":`...)
		b = appendJSONString(b, ln.Shredded)
		b = append(b, "}\n"...)
	}
	return b
}

func appendCommitment(b []byte, ln *Line) []byte {
	b = append(b, `,"commitment":"`...)
	b = base64.StdEncoding.AppendEncode(b, ln.Commitment[:])
	return append(b, '"')
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// does (so the same text always gives the same bytes).
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// Fixed parts of an open record's line, after the event.
const (
	sepEventBytes = `,"event_bytes":"`
	sepSalt       = `","salt":"`
	sepCommitment = `","commitment":"`
	b64Hash       = 44 // base64 of 32 bytes
	openTail      = len(sepSalt) + b64Hash + len(sepCommitment) + b64Hash + len(`"}`)
)

// ParseLine parses one line of records.ndjson (without its newline). It is
// strict: a line is accepted only if AppendLine writes exactly it back, so
// two different lines never mean the same entry. It does not check that an
// open record's commitment matches its opening: Verify does.
func ParseLine(b []byte) (Line, error) {
	var ln Line
	if err := parseLine(&ln, b); err != nil {
		return Line{}, err
	}
	if ln.EventBytes != nil {
		ln.EventBytes = bytes.Clone(ln.EventBytes)
	}
	return ln, nil
}

// parseLine is ParseLine into ln, whose EventBytes are then a sub-slice of
// b (the verifier's workers keep their batch's buffer until it is done).
func parseLine(ln *Line, b []byte) error {
	rest, ok := bytes.CutPrefix(b, []byte(`{"index":`))
	if !ok {
		return fmt.Errorf("%w: does not start with %q", errLine, `{"index":`)
	}
	k := 0
	for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
		k++
	}
	if k == 0 || k > 19 || (k > 1 && rest[0] == '0') {
		return fmt.Errorf("%w: bad index", errLine)
	}
	var i int64
	for _, c := range rest[:k] {
		d := int64(c - '0')
		if i > (math.MaxInt64-d)/10 {
			return fmt.Errorf("%w: bad index", errLine)
		}
		i = i*10 + d
	}
	ln.Index = i
	rest = rest[k:]
	if e, ok := bytes.CutPrefix(rest, []byte(`,"event":`)); ok {
		return parseOpen(ln, e)
	}
	// A tombstone or a shredded entry: decode, then insist on the exact
	// bytes AppendLine writes.
	var v struct {
		Index      int64    `json:"index"`
		Commitment []byte   `json:"commitment"`
		Erased     *Erasure `json:"erased"`
		Shredded   string   `json:"shredded"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		return fmt.Errorf("%w: %v", errLine, err)
	}
	if len(v.Commitment) != 32 || (v.Erased == nil) == (v.Shredded == "") {
		return fmt.Errorf("%w: a line without an event needs a 32-byte commitment and either erased or shredded", errLine)
	}
	copy(ln.Commitment[:], v.Commitment)
	ln.Erased, ln.Shredded = v.Erased, v.Shredded
	if ln.Shredded != "" {
		if _, err := time.Parse(time.DateOnly, ln.Shredded); err != nil {
			return fmt.Errorf("%w: shredded day %q", errLine, ln.Shredded)
		}
	}
	if want := AppendLine(nil, ln); !bytes.Equal(want[:len(want)-1], b) {
		return fmt.Errorf("%w: not in the bundle's canonical form", errLine)
	}
	return nil
}

// strictB64 decodes base64 only in its canonical form.
var strictB64 = base64.StdEncoding.Strict()

// parseOpen parses what follows `{"index":N,"event":` in an open record:
// E `,"event_bytes":"` base64(E) `","salt":"` S `","commitment":"` C `"}`.
// The length of E follows from the line's length: with e = len(E),
// the rest is e + 4*ceil(e/3) + the fixed parts. ln.EventBytes is set to
// E, a sub-slice of r.
func parseOpen(ln *Line, r []byte) error {
	x := len(r) - len(sepEventBytes) - openTail
	if x < 0 {
		return fmt.Errorf("%w: record too short", errLine)
	}
	q, rem := x/7, x%7
	var e int
	switch rem {
	case 0:
		e = 3 * q
	case 5:
		e = 3*q + 1
	case 6:
		e = 3*q + 2
	default:
		return fmt.Errorf("%w: the event and event_bytes lengths disagree", errLine)
	}
	ev, r := r[:e], r[e:]
	r, ok := bytes.CutPrefix(r, []byte(sepEventBytes))
	if !ok {
		return fmt.Errorf("%w: event is not followed by event_bytes", errLine)
	}
	n := base64.StdEncoding.EncodedLen(e)
	// event_bytes must be exactly the (canonical) base64 of the event:
	// encode and compare, a block at a time, which is cheaper than
	// decoding and needs no buffer.
	var blk [64]byte
	for k := 0; k < e; k += 48 {
		src := ev[k:min(k+48, e)]
		m := base64.StdEncoding.EncodedLen(len(src))
		base64.StdEncoding.Encode(blk[:m], src)
		if !bytes.Equal(blk[:m], r[k/3*4:k/3*4+m]) {
			return fmt.Errorf("%w: event and event_bytes differ", errLine)
		}
	}
	r = r[n:]
	ln.EventBytes = ev
	for _, f := range [2]struct {
		sep string
		dst []byte
	}{{sepSalt, ln.Salt[:]}, {sepCommitment, ln.Commitment[:]}} {
		var ok bool
		if r, ok = bytes.CutPrefix(r, []byte(f.sep)); !ok {
			return fmt.Errorf("%w: salt and commitment not where expected", errLine)
		}
		var h [33]byte // DecodedLen(44)
		if m, err := strictB64.Decode(h[:], r[:b64Hash]); err != nil || m != len(f.dst) {
			return fmt.Errorf("%w: bad base64 hash", errLine)
		}
		copy(f.dst, h[:len(f.dst)])
		r = r[b64Hash:]
	}
	if string(r) != `"}` {
		return fmt.Errorf("%w: trailing bytes", errLine)
	}
	return nil
}

// Summary counts entries by (UTC day of the event's time, action, outcome)
// for SUMMARY.txt. An erased entry counts under day "-", action "-",
// outcome "erased"; a shredded one under its shredded day, action "-",
// outcome "shredded"; an event without outcome under outcome "-".
type Summary struct {
	m map[[3]string]int64
}

// AddEvent counts an open record's event.
func (s *Summary) AddEvent(e *event.Event) {
	o := e.Outcome
	if o == "" {
		o = "-"
	}
	s.add(e.Time.UTC().Format(time.DateOnly), e.Action, o)
}

// Add counts one open record by its event's UTC day ("2006-01-02"), action
// and outcome ("-" for none), as AddEvent does.
func (s *Summary) Add(day, action, outcome string) { s.add(day, action, outcome) }

// AddLine counts ln if it is an erased or shredded entry (an open record is
// counted with AddEvent).
func (s *Summary) AddLine(ln *Line) {
	switch {
	case ln.Erased != nil:
		s.add("-", "-", "erased")
	case ln.Shredded != "":
		s.add(ln.Shredded, "-", "shredded")
	}
}

func (s *Summary) add(day, action, outcome string) {
	if s.m == nil {
		s.m = make(map[[3]string]int64)
	}
	s.m[[3]string{day, action, outcome}]++
}

// Bytes returns SUMMARY.txt: "day\taction\toutcome\tcount\n" lines, sorted
// bytewise.
func (s *Summary) Bytes() []byte {
	lines := make([]string, 0, len(s.m))
	for k, n := range s.m {
		lines = append(lines, k[0]+"\t"+k[1]+"\t"+k[2]+"\t"+strconv.FormatInt(n, 10)+"\n")
	}
	slices.Sort(lines)
	return []byte(strings.Join(lines, ""))
}

// DayOf returns the UTC day of t as SUMMARY.txt and shredded lines write it.
func DayOf(t time.Time) string { return t.UTC().Format(time.DateOnly) }
