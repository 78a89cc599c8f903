package evidence

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
	itlog "indelible.dev/tlog"
)

// ErrUnusable means the input is not a bundle Verify can check at all: not
// a tar file, a file missing or out of order, a manifest or proof that does
// not parse. Errors wrapping it name the problem. (A bundle that parses but
// whose checks fail is not an error: see Report.Failures.)
var ErrUnusable = errors.New("evidence: unusable bundle")

// Options configure Verify.
type Options struct {
	// Policy is who must have signed the checkpoint: the log's key and a
	// quorum of witnesses (tlog.NewPolicy). Required.
	Policy itlog.Policy
	// Pinned, if set, is the signed checkpoint an earlier audit ended on:
	// the bundle's checkpoint must be consistent with it (the bundle then
	// needs a consistency.proof from its size, unless the sizes are equal).
	Pinned []byte
}

// Failure is one failed check: which (manifest, checkpoint, records, range,
// erasures, summary, counts, window, pin) and what is wrong.
type Failure struct {
	Check   string `json:"check"`
	Message string `json:"message"`
}

func (f Failure) String() string { return f.Check + ": " + f.Message }

// Erased is an erased entry as the bundle reports it, and the index of its
// indelible.erase record if that is in the bundle (else -1).
type Erased struct {
	Index      int64   `json:"index"`
	Erasure    Erasure `json:"erasure"`
	EraseIndex int64   `json:"erase_index"`
}

// Report is what Verify found. It is complete even when checks failed.
type Report struct {
	Origin string `json:"origin"`
	Begin  int64  `json:"begin"`
	End    int64  `json:"end"`
	Size   int64  `json:"size"` // the checkpoint's tree size
	// Accounted is the number of entries of [Begin, End) found exactly once,
	// in order; Open, Erased and Shredded count the lines by kind.
	Accounted int64 `json:"accounted"`
	Open      int64 `json:"open"`
	Erased    int64 `json:"erased"`
	Shredded  int64 `json:"shredded"`
	// Cosigned is how many of the policy's witnesses cosigned; Witnesses
	// how many the policy names.
	Cosigned  int `json:"cosigned"`
	Witnesses int `json:"witnesses"`
	// PinnedSize is the pin's tree size, or -1 without a pin.
	PinnedSize int64 `json:"pinned_size"`
	// ErasedEntries lists the erased entries (at most MaxReportedErased).
	ErasedEntries []Erased `json:"erased_entries"`
	// ShreddedDays counts shredded entries by day.
	ShreddedDays map[string]int64 `json:"shredded_days"`
	Manifest     Manifest         `json:"manifest"`
	Failures     []Failure        `json:"failures"`
	// Checkpoint is the bundle's signed checkpoint note (for --emit-pin).
	Checkpoint []byte `json:"-"`
}

// MaxReportedErased bounds Report.ErasedEntries, and the erasures Verify
// matches against their indelible.erase records.
const MaxReportedErased = 100000

// OK reports whether every check passed.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

// SummaryLine returns the one-line result (docs/evidence.md):
// "N/N entries accounted for: x open, y erased, z shredded; witnessed k/w"
// and, with a pin, "; consistent with pin M".
func (r *Report) SummaryLine() string {
	n := r.End - r.Begin
	s := fmt.Sprintf("%d/%d entries accounted for: %d open, %d erased, %d shredded; witnessed %d/%d",
		r.Accounted, n, r.Open, r.Erased, r.Shredded, r.Cosigned, r.Witnesses)
	if r.PinnedSize >= 0 {
		s += fmt.Sprintf("; consistent with pin %d", r.PinnedSize)
	}
	return s
}

// verifier is the state of one Verify.
type verifier struct {
	opts Options
	rep  *Report
	tr   *tar.Reader
	m    Manifest
	cp   itlog.Checkpoint
	cpOK bool // cp was parsed (signed or not)

	// Records.
	mid       *compact.Range // leaves of the lines, in line order
	next      int64          // the index expected next
	missing   map[int64]bool // indexes skipped so far (bounded)
	sum       Summary
	erased    map[int64]int      // index -> position in rep.ErasedEntries
	erasures  map[int64]eraseRec // target index -> its indelible.erase record in the bundle
	firstRecv string
	lastRecv  string
	recFails  int
}

type eraseRec struct {
	index  int64
	at     time.Time
	by     string
	reason string
}

// maxMissing bounds the skipped indexes remembered to tell a reordering
// from a loss; maxRecordFailures the records failures reported one by one.
const (
	maxMissing        = 4096
	maxRecordFailures = 100
)

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// Verify reads a bundle from r and checks it, with no other input than
// opts: the manifest's file hashes; the checkpoint's signature and witness
// quorum; every open record's commitment and canonical bytes; that the
// left range, the end-begin leaves and the right range give the
// checkpoint's root (so no entry is missing, added, reordered or
// duplicated); each erased entry against its indelible.erase record when
// that is in the bundle; the summary and the counts; and, with a pin, the
// consistency proof from the pin to the checkpoint. It returns the report
// (see Report.OK) and an error wrapping ErrUnusable only if the input cannot
// be checked at all. Memory does not grow with the number of records.
func Verify(r io.Reader, opts Options) (*Report, error) {
	if err := opts.Policy.Check(); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	v := &verifier{
		opts:     opts,
		rep:      &Report{PinnedSize: -1, ShreddedDays: map[string]int64{}, Witnesses: len(opts.Policy.Witnesses), ErasedEntries: []Erased{}, Failures: []Failure{}},
		tr:       tar.NewReader(r),
		missing:  map[int64]bool{},
		erased:   map[int64]int{},
		erasures: map[int64]eraseRec{},
	}
	if err := v.run(); err != nil {
		return v.rep, err
	}
	return v.rep, nil
}

func (v *verifier) fail(check, format string, args ...any) {
	v.rep.Failures = append(v.rep.Failures, Failure{check, fmt.Sprintf(format, args...)})
}

func unusable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnusable, fmt.Sprintf(format, args...))
}

// nextFile returns the next tar entry, which must be a regular file named
// name (or, with optional, no entry at all: nil).
func (v *verifier) nextFile(name string, optional bool) (*tar.Header, error) {
	h, err := v.tr.Next()
	if err == io.EOF && optional {
		return nil, nil
	}
	if err == io.EOF {
		return nil, unusable("%s is missing", name)
	}
	if err != nil {
		return nil, unusable("reading the tar file: %v", err)
	}
	if h.Name != name || h.Typeflag != tar.TypeReg {
		if optional {
			return h, nil // the caller reports it
		}
		return nil, unusable("found %q where %s was expected", h.Name, name)
	}
	return h, nil
}

// readSmall reads the current file whole, at most max bytes.
func (v *verifier) readSmall(name string, h *tar.Header, max int64) ([]byte, error) {
	if h.Size > max {
		return nil, unusable("%s is %d bytes, over the limit of %d", name, h.Size, max)
	}
	b, err := io.ReadAll(io.LimitReader(v.tr, max+1))
	if err != nil {
		return nil, unusable("reading %s: %v", name, err)
	}
	return b, nil
}

// checkFile compares the SHA-256 of a file with the manifest's.
func (v *verifier) checkFile(name, sum string) {
	want, ok := v.m.Files[name]
	switch {
	case !ok:
		v.fail("manifest", "%s is in the bundle but not in the manifest's files", name)
	case want != sum:
		v.fail("manifest", "%s has SHA-256 %s, the manifest says %s", name, sum, want)
	}
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func (v *verifier) run() error {
	// MANIFEST.json
	h, err := v.nextFile(FileManifest, false)
	if err != nil {
		return err
	}
	mb, err := v.readSmall(FileManifest, h, MaxManifestBytes)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(mb))
	d.DisallowUnknownFields()
	if err := d.Decode(&v.m); err != nil {
		return unusable("%s: %v", FileManifest, err)
	}
	if v.m.Begin < 0 || v.m.End < v.m.Begin || v.m.Size < v.m.End {
		return unusable("%s: range [%d, %d) in tree size %d", FileManifest, v.m.Begin, v.m.End, v.m.Size)
	}
	v.rep.Manifest = v.m
	v.rep.Origin, v.rep.Begin, v.rep.End = v.m.Origin, v.m.Begin, v.m.End
	for name := range v.m.Files {
		switch name {
		case FileCheckpoint, FileRecords, FileRangeProof, FileSummary, FileConsistency:
		default:
			v.fail("manifest", "the manifest lists %q, which is not a bundle file", name)
		}
	}

	// checkpoint
	if h, err = v.nextFile(FileCheckpoint, false); err != nil {
		return err
	}
	cpb, err := v.readSmall(FileCheckpoint, h, MaxCheckpointBytes)
	if err != nil {
		return err
	}
	v.checkFile(FileCheckpoint, hexSum(cpb))
	v.rep.Checkpoint = cpb
	v.checkCheckpoint(cpb)

	// records.ndjson
	if _, err = v.nextFile(FileRecords, false); err != nil {
		return err
	}
	if err := v.readRecords(); err != nil {
		return err
	}

	// range.proof
	if h, err = v.nextFile(FileRangeProof, false); err != nil {
		return err
	}
	rpb, err := v.readSmall(FileRangeProof, h, MaxRangeProofBytes)
	if err != nil {
		return err
	}
	v.checkFile(FileRangeProof, hexSum(rpb))
	if err := v.checkRange(rpb); err != nil {
		return err
	}

	// SUMMARY.txt
	if h, err = v.nextFile(FileSummary, false); err != nil {
		return err
	}
	sb, err := v.readSmall(FileSummary, h, MaxSummaryBytes)
	if err != nil {
		return err
	}
	v.checkFile(FileSummary, hexSum(sb))
	v.checkSummary(sb)

	// consistency.proof (optional), then nothing else.
	h, err = v.nextFile(FileConsistency, true)
	if err != nil {
		return err
	}
	var proof tlog.TreeProof
	hasProof := false
	if h != nil && h.Name == FileConsistency && h.Typeflag == tar.TypeReg {
		pb, err := v.readSmall(FileConsistency, h, MaxConsistencyBytes)
		if err != nil {
			return err
		}
		v.checkFile(FileConsistency, hexSum(pb))
		if proof, err = parseConsistency(pb); err != nil {
			return err
		}
		hasProof = true
		h, err = v.tr.Next()
		if err != nil && err != io.EOF {
			return unusable("reading the tar file: %v", err)
		}
	}
	for h != nil {
		v.fail("manifest", "the bundle holds %q, which is not a bundle file", h.Name)
		h, err = v.tr.Next()
		if err != nil && err != io.EOF {
			return unusable("reading the tar file: %v", err)
		}
	}
	for name := range v.m.Files {
		if name == FileConsistency && !hasProof {
			v.fail("manifest", "the manifest lists %s, which the bundle lacks", name)
		}
	}
	v.checkPin(hasProof, proof)
	v.checkCounts()
	return nil
}

// checkCheckpoint checks the note against the policy and the manifest. The
// checkpoint is parsed even if its signatures fail, so the other checks
// still run (and report their own findings).
func (v *verifier) checkCheckpoint(b []byte) {
	cp, cosigners, err := v.opts.Policy.Open(b)
	v.rep.Cosigned = len(cosigners)
	if err != nil {
		v.fail("checkpoint", "%v", err)
		if cp.N == 0 && cp.Origin == "" {
			text, _, ok := itlog.SplitNote(b)
			if !ok {
				return
			}
			if cp, err = itlog.ParseCheckpoint(string(text)); err != nil {
				return
			}
		}
	}
	v.cp, v.cpOK = cp, true
	v.rep.Size = cp.N
	if cp.N != v.m.Size {
		v.fail("checkpoint", "tree size %d, the manifest says %d", cp.N, v.m.Size)
	}
	if cp.Origin != v.m.Origin {
		v.fail("manifest", "origin %q, the checkpoint's is %q", v.m.Origin, cp.Origin)
	}
	if cp.N < v.m.End {
		v.fail("checkpoint", "tree size %d does not cover the range's end %d", cp.N, v.m.End)
	}
}

// readRecords reads records.ndjson: one goroutine reads and hashes the
// file in blocks and cuts them into batches of whole lines, workers check
// each line on its own (checkLine: parsing, commitment, canonical bytes,
// leaf hash), and this goroutine takes the batches in order and does what
// needs the order (account: the index sequence, the compact range, the
// summary, the erasures). Memory is bounded by the batches in flight, whose
// buffers are reused.
func (v *verifier) readRecords() error {
	v.mid = rangeFactory.NewEmptyRange(uint64(v.m.Begin))
	v.next = v.m.Begin
	dig := sha256.New()
	src := io.TeeReader(v.tr, dig)

	type batch struct {
		first int64  // line number of the first line
		buf   []byte // whole lines
		ends  []int  // end of each line in buf (its newline excluded)
		res   []lineResult
		done  chan struct{}
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	inFlight := 2*workers + 1
	free := make(chan *batch, inFlight+1)
	for range inFlight + 1 {
		free <- &batch{buf: make([]byte, 0, recordBlock+MaxLineBytes+1)}
	}
	jobs := make(chan *batch)
	queue := make(chan *batch, inFlight)
	var readErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &lineWorker{intern: map[string]string{}}
			for b := range jobs {
				b.res = slices.Grow(b.res[:0], len(b.ends))[:len(b.ends)]
				start := 0
				for k, end := range b.ends {
					w.check(&b.res[k], b.buf[start:end])
					start = end + 1
				}
				close(b.done)
			}
		}()
	}
	go func() {
		defer close(queue)
		defer close(jobs)
		lineNo := int64(0)
		var carry []byte // a partial line from the previous block
		eof := false
		for !eof {
			var b *batch
			select {
			case b = <-free:
			case <-stop:
				return
			}
			b.first, b.done = lineNo+1, make(chan struct{})
			b.buf = append(b.buf[:0], carry...)
			b.ends = b.ends[:0]
			// Read a block (more if no newline came yet).
			for {
				n0 := len(b.buf)
				buf := b.buf[:cap(b.buf)]
				n, err := io.ReadFull(src, buf[n0:min(len(buf), n0+recordBlock)])
				b.buf = buf[:n0+n]
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					eof = true
				} else if err != nil {
					readErr = unusable("reading %s: %v", FileRecords, err)
					return
				}
				if eof || bytes.LastIndexByte(b.buf[n0:], '\n') >= 0 {
					break
				}
				if len(b.buf) > MaxLineBytes {
					readErr = unusable("%s: a line over %d bytes", FileRecords, MaxLineBytes)
					return
				}
				b.buf = slices.Grow(b.buf, recordBlock)
			}
			last := bytes.LastIndexByte(b.buf, '\n')
			if eof && last != len(b.buf)-1 {
				readErr = unusable("%s: the last line has no newline", FileRecords)
				return
			}
			carry = append(carry[:0], b.buf[last+1:]...)
			b.buf = b.buf[:last+1]
			for start := 0; start < len(b.buf); {
				end := start + bytes.IndexByte(b.buf[start:], '\n')
				if end-start > MaxLineBytes {
					readErr = unusable("%s: a line over %d bytes", FileRecords, MaxLineBytes)
					return
				}
				b.ends = append(b.ends, end)
				start = end + 1
			}
			if len(b.ends) == 0 {
				return
			}
			lineNo += int64(len(b.ends))
			select {
			case queue <- b:
			case <-stop:
				return
			}
			select {
			case jobs <- b:
			case <-stop:
				return
			}
		}
	}()
	lineNo := int64(0)
	var err error
	for b := range queue {
		<-b.done
		var last []byte
		for k := range b.res {
			lineNo = b.first + int64(k)
			if err == nil {
				r := &b.res[k]
				var open bool
				if open, err = v.account(lineNo, r); open {
					if v.firstRecv == "" {
						v.firstRecv = string(r.recv)
					}
					last = r.recv
				}
			}
		}
		if last != nil {
			v.lastRecv = string(last) // before the buffer is reused
		}
		free <- b
	}
	close(stop)
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	if err != nil {
		return err
	}
	v.checkFile(FileRecords, hex.EncodeToString(dig.Sum(nil)))
	ks := make([]int64, 0, len(v.missing))
	for k := range v.missing {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	for _, k := range ks {
		v.recordFail("entry %d is missing", k)
	}
	if v.next < v.m.End {
		v.recordFail("entries %d to %d are missing: the records end at line %d", v.next, v.m.End-1, lineNo)
	}
	// Erased entries against their indelible.erase records in the bundle.
	for _, e := range v.rep.ErasedEntries {
		rec, ok := v.erasures[e.Index]
		if !ok {
			continue
		}
		v.rep.ErasedEntries[v.erased[e.Index]].EraseIndex = rec.index
		if !rec.at.Equal(e.Erasure.At) || rec.by != e.Erasure.By || rec.reason != e.Erasure.Reason {
			v.fail("erasures", "entry %d: the tombstone says erased at %s by %q (reason %q), its indelible.erase record %d says at %s by %q (reason %q)",
				e.Index, e.Erasure.At.Format(time.RFC3339Nano), e.Erasure.By, e.Erasure.Reason,
				rec.index, rec.at.Format(time.RFC3339Nano), rec.by, rec.reason)
		}
	}
	for target, rec := range v.erasures {
		if target >= v.m.Begin && target < rec.index && target < v.m.End {
			if _, ok := v.erased[target]; !ok && !v.missing[target] {
				v.fail("erasures", "indelible.erase record %d erased entry %d, which the bundle shows as not erased", rec.index, target)
			}
		}
	}
	return nil
}

func (v *verifier) recordFail(format string, args ...any) {
	v.recFails++
	if v.recFails <= maxRecordFailures {
		v.fail("records", format, args...)
	} else if v.recFails == maxRecordFailures+1 {
		v.fail("records", "more failures not shown")
	}
}

// recordBlock is how much of records.ndjson the reader hands the workers
// at once (whole lines: a little less, or up to a line more).
const recordBlock = 256 << 10

// lineResult is what checkLine found in one line.
type lineResult struct {
	ln       Line
	parseErr error
	openErr  string // an open record whose opening fails, why
	leaf     tlog.Hash
	fields   [3]string // day, action, outcome
	recv     []byte    // received_at (may alias the batch's buffer)
	erase    *eraseRec // an indelible.erase record: its target in index
	target   int64
}

// lineWorker is one verifier worker's state: the strings it has made for
// the summary (so that each day, action and outcome is allocated once).
type lineWorker struct {
	intern map[string]string
}

// maxInterned bounds a worker's interned strings (a bundle is untrusted).
const maxInterned = 1 << 16

func (w *lineWorker) str(b []byte) string {
	if s, ok := w.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(w.intern) < maxInterned {
		w.intern[s] = s
	}
	return s
}

// check checks what one line shows on its own: it parses, an open
// record's salt and event bytes give its commitment, and the bytes are a
// canonical event; and it computes the entry's leaf hash.
func (w *lineWorker) check(r *lineResult, b []byte) {
	*r = lineResult{}
	if r.parseErr = parseLine(&r.ln, b); r.parseErr != nil {
		return
	}
	ln := &r.ln
	r.leaf = leafHash(ln.Commitment)
	if ln.Kind() != "open" {
		return
	}
	if c := event.Commitment(ln.Salt, ln.EventBytes); c != ln.Commitment {
		r.openErr = "the commitment does not match the salt and event bytes (an altered event)"
		return
	}
	if f, ok := quickCanonical(ln.EventBytes); ok {
		r.fields = [3]string{w.str(f.day), w.str(f.action), w.str(f.outcome)}
		r.recv = f.receivedAt
		return
	}
	e, err := event.Decode(ln.EventBytes)
	if err != nil {
		r.openErr = fmt.Sprintf("the event does not decode: %v", err)
		return
	}
	if cb, err := event.Canonical(e); err != nil || !bytes.Equal(cb, ln.EventBytes) {
		r.openErr = "the event bytes are not canonical"
		return
	}
	o := e.Outcome
	if o == "" {
		o = "-"
	}
	r.fields = [3]string{e.Time.UTC().Format(time.DateOnly), e.Action, o}
	r.recv = []byte(e.ReceivedAt.UTC().Format(time.RFC3339Nano))
	if e.Action == "indelible.erase" {
		var md struct {
			Index  *int64 `json:"index"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(e.Metadata, &md) == nil && md.Index != nil {
			by := e.SubmittedBy
			if e.Actor != nil {
				by = e.Actor.ID
			}
			r.erase = &eraseRec{index: ln.Index, at: e.ReceivedAt, by: by, reason: md.Reason}
			r.target = *md.Index
		}
	}
}

// leafHash is RFC 6962's leaf hash of a log entry, SHA-256(0x00 || c)
// (tlog.RecordHash, without its allocation).
func leafHash(c [32]byte) tlog.Hash {
	var b [33]byte
	copy(b[1:], c[:])
	return sha256.Sum256(b[:])
}

// account takes one checked line, in file order. It reports whether the
// line is an open record counted in the summary (whose r.recv is then the
// latest received_at).
func (v *verifier) account(lineNo int64, r *lineResult) (bool, error) {
	if r.parseErr != nil {
		v.recordFail("line %d: %v", lineNo, r.parseErr)
		return false, nil
	}
	ln := &r.ln
	i := ln.Index
	switch {
	case i < v.m.Begin || i >= v.m.End:
		v.recordFail("line %d: index %d is outside the bundle's range [%d, %d): a foreign line", lineNo, i, v.m.Begin, v.m.End)
		return false, nil
	case i == v.next:
		v.next++
		v.rep.Accounted++
	case i > v.next:
		for k := v.next; k < i && len(v.missing) < maxMissing; k++ {
			v.missing[k] = true
		}
		v.next = i + 1
		v.rep.Accounted++
	case v.missing[i]:
		delete(v.missing, i)
		v.recordFail("line %d: entry %d is out of order (after entry %d)", lineNo, i, v.next-1)
	default:
		v.recordFail("line %d: entry %d is duplicated", lineNo, i)
	}
	// The range keeps the slice it is given: a copy, not the batch's.
	if err := v.mid.Append(bytes.Clone(r.leaf[:]), nil); err != nil {
		return false, unusable("hashing the records: %v", err)
	}
	switch {
	case ln.Erased != nil:
		v.rep.Erased++
		if len(v.rep.ErasedEntries) < MaxReportedErased {
			v.erased[i] = len(v.rep.ErasedEntries)
			v.rep.ErasedEntries = append(v.rep.ErasedEntries, Erased{Index: i, Erasure: *ln.Erased, EraseIndex: -1})
		}
		v.sum.AddLine(ln)
		return false, nil
	case ln.Shredded != "":
		v.rep.Shredded++
		v.rep.ShreddedDays[ln.Shredded]++
		v.sum.AddLine(ln)
		return false, nil
	}
	v.rep.Open++
	if r.openErr != "" {
		v.recordFail("line %d: entry %d: %s", lineNo, i, r.openErr)
		return false, nil
	}
	v.sum.add(r.fields[0], r.fields[1], r.fields[2])
	if r.erase != nil && len(v.erasures) < MaxReportedErased {
		v.erasures[r.target] = *r.erase
	}
	return true, nil
}

// checkRange checks range.proof against the manifest and recomputes the
// root: left range, the records' leaves, right range.
func (v *verifier) checkRange(b []byte) error {
	var rp RangeProof
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&rp); err != nil {
		return unusable("%s: %v", FileRangeProof, err)
	}
	if rp.Size != v.m.Size || rp.Begin != v.m.Begin || rp.End != v.m.End {
		v.fail("range", "range.proof is for [%d, %d) in size %d, the manifest for [%d, %d) in size %d",
			rp.Begin, rp.End, rp.Size, v.m.Begin, v.m.End, v.m.Size)
		return nil
	}
	for _, h := range append(slices.Clone(rp.Left), rp.Right...) {
		if len(h) != tlog.HashSize {
			return unusable("%s: a hash of %d bytes", FileRangeProof, len(h))
		}
	}
	left, err := rangeFactory.NewRange(0, uint64(rp.Begin), rp.Left)
	if err != nil {
		v.fail("range", "the left range [0, %d): %v", rp.Begin, err)
		return nil
	}
	right, err := rangeFactory.NewRange(uint64(rp.End), uint64(rp.Size), rp.Right)
	if err != nil {
		v.fail("range", "the right range [%d, %d): %v", rp.End, rp.Size, err)
		return nil
	}
	if v.mid.End() != uint64(rp.End) {
		v.fail("range", "the records hold %d leaves, the range [%d, %d) needs %d: entries are missing or added",
			v.mid.End()-v.mid.Begin(), rp.Begin, rp.End, rp.End-rp.Begin)
		return nil
	}
	if err := left.AppendRange(v.mid, nil); err != nil {
		return unusable("joining the ranges: %v", err)
	}
	if err := left.AppendRange(right, nil); err != nil {
		return unusable("joining the ranges: %v", err)
	}
	var root []byte
	if rp.Size == 0 {
		root = itlog.EmptyRoot[:]
	} else if root, err = left.GetRootHash(nil); err != nil {
		return unusable("computing the root: %v", err)
	}
	if !v.cpOK {
		v.fail("range", "no checkpoint to compare the root with")
		return nil
	}
	if !bytes.Equal(root, v.cp.Hash[:]) {
		v.fail("range", "the left range, the %d records and the right range give root %s, the checkpoint's is %s: an entry is missing, added, altered or reordered",
			rp.End-rp.Begin, base64.StdEncoding.EncodeToString(root), base64.StdEncoding.EncodeToString(v.cp.Hash[:]))
	}
	return nil
}

// checkSummary compares SUMMARY.txt with the summary of the records.
func (v *verifier) checkSummary(b []byte) {
	want := v.sum.Bytes()
	if bytes.Equal(b, want) {
		return
	}
	got, exp := strings.Split(string(b), "\n"), strings.Split(string(want), "\n")
	for k := 0; k < max(len(got), len(exp)); k++ {
		var g, e string
		if k < len(got) {
			g = got[k]
		}
		if k < len(exp) {
			e = exp[k]
		}
		if g != e {
			v.fail("summary", "SUMMARY.txt does not match the records: line %d is %q, the records give %q", k+1, g, e)
			return
		}
	}
}

// checkCounts compares the manifest's counts and window with the records.
func (v *verifier) checkCounts() {
	c := Counts{v.rep.Open, v.rep.Erased, v.rep.Shredded}
	if c != v.m.Counts {
		v.fail("counts", "the manifest counts %d open, %d erased, %d shredded; the records hold %d, %d, %d",
			v.m.Counts.Open, v.m.Counts.Erased, v.m.Counts.Shredded, c.Open, c.Erased, c.Shredded)
	}
	if w := v.m.Window; w.FirstReceivedAt != v.firstRecv || w.LastReceivedAt != v.lastRecv {
		v.fail("window", "the manifest's first and last received_at are %q and %q, the records' %q and %q",
			w.FirstReceivedAt, w.LastReceivedAt, v.firstRecv, v.lastRecv)
	}
}

func parseConsistency(b []byte) (tlog.TreeProof, error) {
	var p tlog.TreeProof
	if len(b) == 0 {
		return p, nil
	}
	if b[len(b)-1] != '\n' {
		return nil, unusable("%s: no final newline", FileConsistency)
	}
	for _, l := range strings.Split(string(b[:len(b)-1]), "\n") {
		h, err := itlog.ParseHash(l)
		if err != nil {
			return nil, unusable("%s: %v", FileConsistency, err)
		}
		p = append(p, h)
	}
	return p, nil
}

// checkPin checks the bundle's checkpoint against the auditor's pin.
func (v *verifier) checkPin(hasProof bool, proof tlog.TreeProof) {
	if v.opts.Pinned == nil {
		return
	}
	pin, _, err := itlog.OpenCheckpoint(v.opts.Pinned, v.opts.Policy.Log)
	if err != nil {
		v.fail("pin", "the pinned checkpoint does not verify under the log key: %v", err)
		return
	}
	v.rep.PinnedSize = pin.N
	switch {
	case !v.cpOK:
		v.fail("pin", "no checkpoint to compare the pin with")
	case pin.N > v.cp.N:
		v.fail("pin", "the pinned size %d is beyond the bundle's checkpoint %d: the log went backwards", pin.N, v.cp.N)
	case pin.N == v.cp.N:
		if pin.Hash != v.cp.Hash {
			v.fail("pin", "the pin and the bundle's checkpoint have size %d with different roots: a fork", pin.N)
		}
	case !hasProof:
		v.fail("pin", "the bundle carries no consistency.proof (fetch it with pinned_size=%d)", pin.N)
	default:
		if err := itlog.CheckConsistency(proof, pin.N, pin.Hash, v.cp.N, v.cp.Hash); err != nil {
			v.fail("pin", "the consistency proof from the pinned size %d to %d does not verify: the bundle's checkpoint is inconsistent with the pin", pin.N, v.cp.N)
		}
	}
}
