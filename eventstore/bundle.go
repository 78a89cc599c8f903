package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
	"indelible.dev/evidence"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// Evidence bundles (docs/evidence.md): the complete population of a range of
// the log, built against a checkpoint the server served, for an auditor to
// verify offline with package evidence.

// ErrBadBundle is a bundle request refused as malformed or out of range (400).
var ErrBadBundle = errors.New("events: bad bundle request")

// MaxBundleEntries bounds the entries of one bundle.
const MaxBundleEntries = 100_000_000

// BundleRequest says which bundle to build: the index range [From, To), or
// with ByTime the entries received in [Since, Until); against the checkpoint
// of size Size if HasSize (else the newest served); with a consistency proof
// from PinnedSize if HasPin. LogKey, WitnessKeys and Quorum go into the
// manifest as the server's configuration (a verifier trusts its own).
type BundleRequest struct {
	From, To     int64
	ByTime       bool
	Since, Until time.Time
	Size         int64
	HasSize      bool
	PinnedSize   int64
	HasPin       bool
	LogKey       string
	WitnessKeys  []string
	Quorum       int
	// SpoolDir is where the records wait between their build and their
	// sending (encrypted, see spool). Default: os.TempDir().
	SpoolDir string
}

// BundlePlan is a bundle resolved against a checkpoint, ready to be written.
type BundlePlan struct {
	l          *Layer
	req        BundleRequest
	begin, end int64
	size       int64
	checkpoint []byte
	root       tlog.Hash
}

// Begin, End and Size return the plan's range [Begin, End) and tree size.
func (p *BundlePlan) Begin() int64 { return p.begin }
func (p *BundlePlan) End() int64   { return p.end }
func (p *BundlePlan) Size() int64  { return p.size }

// PlanBundle resolves req: the checkpoint (ErrNotFound if the server kept
// no checkpoint of that size), the index range (a time window is mapped to
// indexes by received_at, see bundleSearch). Errors wrap ErrBadBundle for a
// request that can never succeed.
func (l *Layer) PlanBundle(req BundleRequest) (*BundlePlan, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	var n int64
	var signed []byte
	var err error
	if req.HasSize {
		n = req.Size
		if signed, err = l.log.ArchivedCheckpoint(n); errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("%w: the server kept no checkpoint of size %d", ErrNotFound, n)
		}
	} else {
		n, signed, err = l.log.ServedCheckpoint()
	}
	if err != nil {
		return nil, err
	}
	text, _, ok := itlog.SplitNote(signed)
	if !ok {
		return nil, fmt.Errorf("%w: archived checkpoint %d is not a note", ErrCorrupt, n)
	}
	cp, err := itlog.ParseCheckpoint(string(text))
	if err != nil || cp.N != n {
		return nil, fmt.Errorf("%w: archived checkpoint %d does not parse", ErrCorrupt, n)
	}
	p := &BundlePlan{l: l, req: req, size: n, checkpoint: signed, root: cp.Hash}
	if req.ByTime {
		if !req.Since.Before(req.Until) {
			return nil, fmt.Errorf("%w: since %s is not before until %s", ErrBadBundle, req.Since.Format(time.RFC3339Nano), req.Until.Format(time.RFC3339Nano))
		}
		if p.begin, err = l.bundleSearch(req.Since, n); err == nil {
			p.end, err = l.bundleSearch(req.Until, n)
		}
		if err != nil {
			return nil, err
		}
	} else {
		if req.From < 0 || req.To < req.From {
			return nil, fmt.Errorf("%w: from %d to %d is not a range", ErrBadBundle, req.From, req.To)
		}
		if req.To > n {
			return nil, fmt.Errorf("%w: to %d is beyond the checkpoint's tree size %d", ErrBadBundle, req.To, n)
		}
		p.begin, p.end = req.From, req.To
	}
	if p.end-p.begin > MaxBundleEntries {
		return nil, fmt.Errorf("%w: %d entries, at most %d in one bundle", ErrBadBundle, p.end-p.begin, MaxBundleEntries)
	}
	if req.HasPin && (req.PinnedSize < 0 || req.PinnedSize > n) {
		return nil, fmt.Errorf("%w: pinned_size %d is not between 0 and the checkpoint's size %d", ErrBadBundle, req.PinnedSize, n)
	}
	return p, nil
}

// bundleSearch returns the first index below n whose event was received at
// or after t, or n. received_at is not strictly increasing with the index
// (concurrent requests), so this is a binary search over "the next entry
// whose receive time is known": a retention-shredded entry counts as
// received at the end of its UTC day, and an erased one goes with the next
// entry whose time is known. The result is deterministic for a given store.
func (l *Layer) bundleSearch(t time.Time, n int64) (int64, error) {
	lo, hi := int64(0), n
	for lo < hi {
		mid := lo + (hi-lo)/2
		j, recv, ok, err := l.nextReceived(mid, hi)
		if err != nil {
			return 0, err
		}
		if !ok || !recv.Before(t) {
			hi = mid
		} else {
			lo = j + 1
		}
	}
	return lo, nil
}

// nextShredded returns the first index >= i in a shredded range, and the
// end of that range's day; ok is false if there is none.
func (l *Layer) nextShredded(i int64) (int64, time.Time, bool) {
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	best, ok := int64(0), false
	var day int64
	for _, r := range l.shredded {
		if r.Hi > i && (!ok || max(r.Lo, i) < best) {
			best, day, ok = max(r.Lo, i), r.Day, true
		}
	}
	return best, dayTime(day + 1), ok
}

// nextReceived returns the first index j in [i, hi) whose receive time is
// known (see bundleSearch), and that time; ok is false if there is none.
func (l *Layer) nextReceived(i, hi int64) (int64, time.Time, bool, error) {
	s, sEnd, sOK := l.nextShredded(i)
	if !sOK || s > hi {
		s = hi
	}
	for i < s {
		var ks []int64
		var vs [][]byte
		if err := l.log.ScanExt(payloadKey(i), payloadKey(s), false, func(k, v []byte) bool {
			ks = append(ks, int64(binary.BigEndian.Uint64(k[1:])))
			vs = append(vs, append([]byte(nil), v...))
			return len(ks) < 16
		}); err != nil {
			return 0, time.Time{}, false, fmt.Errorf("events: scanning events: %w", err)
		}
		if len(ks) == 0 {
			break
		}
		for k, j := range ks {
			r, err := l.record(j, vs[k])
			if errors.Is(err, ErrGone) {
				continue
			}
			if err != nil {
				return 0, time.Time{}, false, err
			}
			return j, r.Event.ReceivedAt, true, nil
		}
		i = ks[len(ks)-1] + 1
	}
	if s < hi {
		return s, sEnd, true, nil
	}
	return 0, time.Time{}, false, nil
}

// bundleChunk is how many entries a worker turns into lines at once.
const bundleChunk = 1024

// recordsPass is what one pass over the records gathers.
type recordsPass struct {
	sum         evidence.Summary
	counts      evidence.Counts
	first, last string // received_at of the first and last open records
	intern      map[string]string
}

// str returns b as a string, made once per distinct value (the summary's
// days, actions and outcomes repeat), up to a bound.
func (r *recordsPass) str(b []byte) string {
	if s, ok := r.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.intern) < 1<<16 {
		r.intern[s] = s
	}
	return s
}

// bundleChunkBuf is one chunk of a bundle's first pass: the entries
// [lo, hi), their lines (buf) and their spool frame, reused from chunk to
// chunk.
type bundleChunkBuf struct {
	lo, hi int64
	buf    []byte // the lines of records.ndjson
	frame  []byte // the same lines, as the spool keeps them
	lines  []evidence.Line
	fields []bundleFields // open records' fields, for the summary
	arena  []byte         // the payloads and keys read from the store
	err    error
	done   chan struct{}
}

// writeRecords is the first pass: it builds records.ndjson for
// [p.begin, p.end), writes its bytes to dig (size, SHA-256, CRC) and its
// frames to sp (see spool), and gathers the summary, counts and window
// edges. Chunks of entries are read and opened by parallel workers and
// taken in index order.
func (p *BundlePlan) writeRecords(ctx context.Context, dig io.Writer, sp io.Writer) (*recordsPass, error) {
	out := &recordsPass{intern: map[string]string{}}
	pubN := p.size // reads are bounded by the published size, never below p.size
	if cp, _ := p.l.log.Published(); cp.N > pubN {
		pubN = cp.N
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	inFlight := 2*workers + 1
	free := make(chan *bundleChunkBuf, inFlight+1)
	for range inFlight + 1 {
		free <- &bundleChunkBuf{}
	}
	jobs := make(chan *bundleChunkBuf)
	queue := make(chan *bundleChunkBuf, inFlight)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // the producer stops, closing jobs; the workers then end
		wg.Wait()
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				c.err = p.l.bundleLines(c, pubN)
				close(c.done)
			}
		}()
	}
	go func() {
		defer close(queue)
		defer close(jobs)
		for lo := p.begin; lo < p.end; lo += bundleChunk {
			var c *bundleChunkBuf
			select {
			case c = <-free:
			case <-ctx.Done():
				return
			}
			c.lo, c.hi, c.err, c.done = lo, min(lo+bundleChunk, p.end), nil, make(chan struct{})
			select {
			case queue <- c:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	for c := range queue {
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil {
			return nil, c.err
		}
		var last []byte
		for k := range c.lines {
			ln := &c.lines[k]
			switch ln.Kind() {
			case "open":
				out.counts.Open++
				e := &c.fields[k]
				out.sum.Add(out.str(e.day), out.str(e.action), out.str(e.outcome))
				if out.first == "" {
					out.first = string(e.receivedAt)
				}
				last = e.receivedAt
			case "erased":
				out.counts.Erased++
			default:
				out.counts.Shredded++
			}
			out.sum.AddLine(ln)
		}
		if last != nil {
			out.last = string(last) // before the chunk is reused
		}
		if _, err := dig.Write(c.buf); err != nil {
			return nil, err
		}
		var hdr [binary.MaxVarintLen64]byte
		if _, err := sp.Write(binary.AppendUvarint(hdr[:0], uint64(len(c.frame)))); err != nil {
			return nil, err
		}
		if _, err := sp.Write(c.frame); err != nil {
			return nil, err
		}
		free <- c
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// bundleLines fills c with the lines of entries [c.lo, c.hi) (all below
// pubN, the published size), each line's entry and, for open records, the
// summary's fields.
func (l *Layer) bundleLines(c *bundleChunkBuf, pubN int64) error {
	lo, hi := c.lo, c.hi
	n := int(hi - lo)
	c.lines = slices.Grow(c.lines[:0], n)[:n]
	clear(c.lines)
	c.fields = slices.Grow(c.fields[:0], n)[:n]
	clear(c.fields)
	lines := c.lines
	// The commitments, from the entry bundles.
	for t := lo / itlog.TileWidth; t*itlog.TileWidth < hi; t++ {
		w := int(min(itlog.TileWidth, pubN-t*itlog.TileWidth))
		k := t * itlog.TileWidth
		err := l.log.ReadTileFunc(tlog.Tile{H: itlog.TileHeight, L: itlog.EntriesLevel, N: t, W: w}, func(data []byte) error {
			return itlog.WalkBundle(data, func(e []byte) bool {
				if k >= lo && k < hi {
					if len(e) != 32 {
						return false
					}
					copy(lines[k-lo].Commitment[:], e)
					lines[k-lo].Index = k
				}
				k++
				return k < hi
			})
		})
		if err != nil {
			return fmt.Errorf("events: reading entry bundle %d: %w", t, err)
		}
	}
	for k := range lines {
		if lines[k].Index != lo+int64(k) {
			return fmt.Errorf("%w: log entry %d is not a commitment", ErrCorrupt, lo+int64(k))
		}
	}
	// The payloads present, in one scan, then the wrapped event keys of
	// the version-2 ones (in their 't' keys), in one sorted batch. Both
	// are copied into the chunk's arena (offsets, as it may grow).
	type payload struct {
		i        int64
		v, t     [2]int // offsets of the value and the 't' value in the arena
		hasT, v2 bool
		tkey     []byte
	}
	ps := make([]payload, 0, n)
	arena := c.arena[:0]
	var ferr error
	err := l.log.ScanExt(payloadKey(lo), payloadKey(hi), false, func(key, v []byte) bool {
		i := int64(binary.BigEndian.Uint64(key[1:]))
		_, tk, err := payloadDay(v)
		if err != nil {
			ferr = fmt.Errorf("events: event %d: %w", i, err)
			return false
		}
		pl := payload{i: i, v: [2]int{len(arena), len(arena) + len(v)}, v2: tk != nil}
		arena = append(arena, v...)
		if tk != nil {
			pl.tkey = timeIndexKey(tk, i)
		}
		ps = append(ps, pl)
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	var order []int
	for k := range ps {
		if ps[k].v2 {
			order = append(order, k)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(ps[a].tkey, ps[b].tkey) })
	sorted := make([][]byte, len(order))
	for k, o := range order {
		sorted[k] = ps[o].tkey
	}
	if err := l.log.GetExtNear(sorted, func(k int, v []byte) {
		pl := &ps[order[k]]
		pl.t, pl.hasT = [2]int{len(arena), len(arena) + len(v)}, true
		arena = append(arena, v...)
	}); err != nil {
		return fmt.Errorf("events: reading event keys: %w", err)
	}
	c.arena = arena
	have := make([]bool, n)
	for _, pl := range ps {
		i := pl.i
		ln := &lines[i-lo]
		if pl.v2 && !pl.hasT {
			continue // its key is destroyed: being erased or shredded
		}
		var tval []byte
		if pl.hasT {
			tval = arena[pl.t[0]:pl.t[1]:pl.t[1]]
		}
		salt, b, err := l.openPayload(i, arena[pl.v[0]:pl.v[1]:pl.v[1]], ln.Commitment[:], tval)
		if errors.Is(err, errKeyGone) {
			continue
		}
		if err != nil {
			return fmt.Errorf("events: event %d: %w", i, err)
		}
		if event.Commitment(salt, b) != ln.Commitment {
			return fmt.Errorf("%w: event %d does not match its log entry", ErrCorrupt, i)
		}
		if c.fields[i-lo], err = summaryFields(b); err != nil {
			return fmt.Errorf("%w: event %d: %w", ErrCorrupt, i, err)
		}
		ln.Salt, ln.EventBytes = salt, b
		have[i-lo] = true
	}
	c.buf, c.frame = c.buf[:0], c.frame[:0]
	for k := range lines {
		ln := &lines[k]
		if !have[k] {
			var ee *ErasedError
			var se *ShreddedError
			switch g := l.gone(ln.Index, 0, false); {
			case errors.As(g, &ee):
				ts := ee.Tombstone
				ln.Erased = &evidence.Erasure{At: ts.ErasedAt, By: ts.ErasedBy, Reason: ts.Reason}
			case errors.As(g, &se):
				ln.Shredded = evidence.DayOf(se.Day)
			case g != nil:
				return g
			default:
				if day, ok := l.shedDay(ln.Index); ok {
					ln.Shredded = evidence.DayOf(dayTime(day))
					break
				}
				return fmt.Errorf("%w: index %d", ErrNotEvent, ln.Index)
			}
		}
		start := len(c.buf)
		c.buf = evidence.AppendLine(c.buf, ln)
		c.frame = appendSpooled(c.frame, ln, c.buf[start:])
	}
	return nil
}

// A spool keeps each line of records.ndjson in a shorter form: an open
// record as 'o', its salt and commitment, the length of its event bytes
// (uvarint) and the bytes (the line writes the event twice, once in
// base64); any other line as 'l', its length (uvarint) and the line. The
// lines' indexes follow from the range. readSpooled reads one back.
func appendSpooled(b []byte, ln *evidence.Line, line []byte) []byte {
	if ln.Kind() != "open" {
		b = append(b, 'l')
		b = binary.AppendUvarint(b, uint64(len(line)))
		return append(b, line...)
	}
	b = append(b, 'o')
	b = append(b, ln.Salt[:]...)
	b = append(b, ln.Commitment[:]...)
	b = binary.AppendUvarint(b, uint64(len(ln.EventBytes)))
	return append(b, ln.EventBytes...)
}

// readSpooled reads the spooled line of entry i from r and appends it to
// dst; scratch is a buffer it may reuse.
func readSpooled(r *bytes.Reader, i int64, dst []byte, scratch *[]byte) ([]byte, error) {
	kind, err := r.ReadByte()
	if err != nil {
		return dst, spoolErr(err)
	}
	var ln evidence.Line
	if kind == 'o' {
		var h [event.SaltSize + 32]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return dst, spoolErr(err)
		}
		copy(ln.Salt[:], h[:event.SaltSize])
		copy(ln.Commitment[:], h[event.SaltSize:])
	} else if kind != 'l' {
		return dst, spoolErr(nil)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > evidence.MaxLineBytes || int(n) > r.Len() {
		return dst, spoolErr(err)
	}
	if kind == 'l' {
		dst = slices.Grow(dst, int(n))
		r.Read(dst[len(dst) : len(dst)+int(n)])
		return dst[:len(dst)+int(n)], nil
	}
	eb := slices.Grow((*scratch)[:0], int(n))[:n]
	*scratch = eb
	r.Read(eb)
	ln.Index, ln.EventBytes = i, eb
	return evidence.AppendLine(dst, &ln), nil
}

// writeSpooled is the second pass: it writes records.ndjson to w from the
// spool, a frame (a chunk of the first pass) at a time, the lines made
// again by parallel workers and written in order.
func (p *BundlePlan) writeSpooled(ctx context.Context, sp *spool, w io.Writer) error {
	type frame struct {
		lo, hi int64
		in     []byte // the frame
		out    []byte // its lines
		err    error
		done   chan struct{}
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	inFlight := 2*workers + 1
	free := make(chan *frame, inFlight+1)
	for range inFlight + 1 {
		free <- &frame{}
	}
	jobs := make(chan *frame)
	queue := make(chan *frame, inFlight)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var scratch []byte
			var r bytes.Reader
			for f := range jobs {
				r.Reset(f.in)
				f.out = f.out[:0]
				for i := f.lo; i < f.hi && f.err == nil; i++ {
					f.out, f.err = readSpooled(&r, i, f.out, &scratch)
				}
				if f.err == nil && r.Len() != 0 {
					f.err = spoolErr(nil)
				}
				close(f.done)
			}
		}()
	}
	var readErr error
	go func() {
		defer close(queue)
		defer close(jobs)
		for lo := p.begin; lo < p.end; lo += bundleChunk {
			var f *frame
			select {
			case f = <-free:
			case <-ctx.Done():
				return
			}
			f.lo, f.hi, f.err, f.done = lo, min(lo+bundleChunk, p.end), nil, make(chan struct{})
			n, err := binary.ReadUvarint(sp.br)
			if err != nil || n > uint64(bundleChunk)*(evidence.MaxLineBytes+16) {
				readErr = spoolErr(err)
				return
			}
			f.in = slices.Grow(f.in[:0], int(n))[:n]
			if _, err := io.ReadFull(sp.br, f.in); err != nil {
				readErr = spoolErr(err)
				return
			}
			select {
			case queue <- f:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	written := p.begin
	for f := range queue {
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.err != nil {
			return f.err
		}
		if _, err := w.Write(f.out); err != nil {
			return err
		}
		written = f.hi
		free <- f
	}
	if readErr != nil {
		return readErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if written != p.end {
		return spoolErr(nil)
	}
	return nil
}

func spoolErr(err error) error {
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("events: reading the bundle spool: %w", err)
}

// shedDay returns the day of entry i if retention is shredding that day
// (its payload may already be gone while the shredded record is not yet
// written).
func (l *Layer) shedDay(i int64) (int64, bool) {
	segs, err := l.segments(i + 1)
	if err != nil || len(segs) == 0 {
		return 0, false
	}
	day := segs[len(segs)-1].day
	l.lmu.RLock()
	defer l.lmu.RUnlock()
	return day, l.shedding[day]
}

// Write writes the bundle as a tar file to w (package evidence has the
// format). The manifest, which comes first, holds the SHA-256 of the
// records, so the records are built first, in one pass that hashes them and
// keeps them in a spool file (see spool) in a shorter form, then written
// out from it.
//
// onSize, if not nil, is called with the bundle's size (-1: unknown) before
// the first byte is written.
func (p *BundlePlan) Write(ctx context.Context, w io.Writer, onSize func(int64)) error {
	sp, err := newSpool(p.spoolDir())
	if err != nil {
		return err
	}
	defer sp.close()
	dig := evidence.NewDigest()
	pass, err := p.writeRecords(ctx, dig, sp)
	if err != nil {
		return err
	}
	if err := sp.rewind(); err != nil {
		return err
	}
	parts, err := p.parts(pass, dig)
	if err != nil {
		return err
	}
	parts.OnSize = onSize
	parts.Records = func(w io.Writer) error { return p.writeSpooled(ctx, sp, w) }
	return evidence.Write(w, parts)
}

func (p *BundlePlan) spoolDir() string {
	if p.req.SpoolDir != "" {
		return p.req.SpoolDir
	}
	return os.TempDir()
}

// spool holds a bundle's records between their build and their sending
// (in the form appendSpooled writes). It is a temporary file, unlinked as
// soon as it is created (nothing is left behind, even by a crash), and
// encrypted with AES-256-CTR under a random key that lives only in this
// process's memory: the events' plaintext never reaches a disk
// (docs/evidence.md). No authentication is needed: the file is ours for its
// whole life, and the bundle is verified by its reader (evidence.Write also
// checks the records' CRC-32C against the first pass's).
type spool struct {
	f   *os.File
	key [32]byte
	bw  *bufio.Writer
	enc cipher.Stream
	buf []byte
	br  *bufio.Reader
}

func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, ".indelible-bundle-*")
	if err != nil {
		return nil, fmt.Errorf("events: creating the bundle spool: %w", err)
	}
	os.Remove(f.Name())
	sp := &spool{f: f}
	rand.Read(sp.key[:])
	block, err := aes.NewCipher(sp.key[:])
	if err != nil {
		f.Close()
		return nil, err
	}
	var iv [aes.BlockSize]byte
	sp.enc = cipher.NewCTR(block, iv[:]) // one key, one stream: a zero IV is safe
	sp.bw = bufio.NewWriterSize(f, 256<<10)
	return sp, nil
}

func (sp *spool) Write(b []byte) (int, error) {
	sp.buf = slices.Grow(sp.buf[:0], len(b))[:len(b)]
	sp.enc.XORKeyStream(sp.buf, b)
	return sp.bw.Write(sp.buf)
}

// rewind ends writing and starts reading from the beginning.
func (sp *spool) rewind() error {
	if err := sp.bw.Flush(); err != nil {
		return fmt.Errorf("events: writing the bundle spool: %w", err)
	}
	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	block, err := aes.NewCipher(sp.key[:])
	if err != nil {
		return err
	}
	var iv [aes.BlockSize]byte
	sp.br = bufio.NewReaderSize(&ctrReader{r: sp.f, s: cipher.NewCTR(block, iv[:])}, 256<<10)
	return nil
}

// ctrReader decrypts what it reads.
type ctrReader struct {
	r io.Reader
	s cipher.Stream
}

func (c *ctrReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.s.XORKeyStream(b[:n], b[:n])
	return n, err
}

func (sp *spool) close() {
	clear(sp.key[:])
	sp.f.Close()
}

// parts gathers everything but the records.
func (p *BundlePlan) parts(pass *recordsPass, dig *evidence.Digest) (evidence.Parts, error) {
	left, err := p.l.log.RangeHashes(0, p.begin, p.size)
	if err != nil {
		return evidence.Parts{}, err
	}
	right, err := p.l.log.RangeHashes(p.end, p.size, p.size)
	if err != nil {
		return evidence.Parts{}, err
	}
	var cons [][]byte
	if p.req.HasPin {
		proof, err := p.l.log.ConsistencyProof(p.req.PinnedSize, p.size)
		if err != nil {
			return evidence.Parts{}, fmt.Errorf("events: consistency proof %d -> %d: %w", p.req.PinnedSize, p.size, err)
		}
		cons = [][]byte{}
		for _, h := range proof {
			cons = append(cons, append([]byte(nil), h[:]...))
		}
	}
	win := evidence.Window{By: "index", FirstReceivedAt: pass.first, LastReceivedAt: pass.last}
	if p.req.ByTime {
		win.By = "received_at"
		win.Since = p.req.Since.UTC().Format(time.RFC3339Nano)
		win.Until = p.req.Until.UTC().Format(time.RFC3339Nano)
	}
	text, _, _ := itlog.SplitNote(p.checkpoint)
	cp, _ := itlog.ParseCheckpoint(string(text))
	return evidence.Parts{
		Manifest: evidence.Manifest{
			Origin: cp.Origin, LogKey: p.req.LogKey, WitnessKeys: p.req.WitnessKeys, Quorum: p.req.Quorum,
			Begin: p.begin, End: p.end, Size: p.size, Window: win, Counts: pass.counts,
		},
		Checkpoint:    p.checkpoint,
		RecordsDigest: dig,
		RangeProof:    evidence.RangeProof{Size: p.size, Begin: p.begin, End: p.end, Left: left, Right: right},
		Summary:       pass.sum.Bytes(),
		Consistency:   cons,
	}, nil
}

var dashOutcome = []byte("-")

// bundleFields are what a bundle's summary and window need of an event:
// sub-slices of its bytes (outcome may be the literal "-").
type bundleFields struct {
	day, action, outcome, receivedAt []byte
}

// summaryFields reads the fields of stored canonical event bytes b (which
// opened under their commitment, so they are the bytes the server stored)
// without decoding the whole event: the top-level members are scanned and
// only action, outcome, time and received_at are kept. Canonical times are
// RFC 3339 in UTC, so a time's first ten bytes are its UTC day. It agrees
// with event.Decode on every stored event (TestSummaryFields), at a fraction
// of the cost (BENCHMARKS.md).
func summaryFields(b []byte) (bundleFields, error) {
	var f bundleFields
	bad := func(what string) (bundleFields, error) {
		return bundleFields{}, fmt.Errorf("%w: stored event: %s", ErrCorrupt, what)
	}
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return bad("not an object")
	}
	i := 1
	var timeStr []byte
	for i < len(b)-1 {
		if b[i] == ',' {
			i++
		}
		key, _, j, ok := jsonString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return bad("malformed member")
		}
		i = j + 1
		if b[i] != '"' {
			if i = skipJSONValue(b, i); i < 0 {
				return bad("malformed value")
			}
			continue
		}
		raw, esc, j, ok := jsonString(b, i)
		if !ok {
			return bad("malformed string")
		}
		i = j
		var dst *[]byte
		switch string(key) { // no allocation: the compiler compares in place
		case "action":
			dst = &f.action
		case "outcome":
			dst = &f.outcome
		case "time":
			dst = &timeStr
		case "received_at":
			dst = &f.receivedAt
		default:
			continue
		}
		*dst = raw
		if esc {
			u, ok := unquote(raw, esc)
			if !ok {
				return bad("malformed string")
			}
			*dst = []byte(u)
		}
	}
	if len(f.action) == 0 || len(timeStr) < 10 || len(f.receivedAt) == 0 {
		return bad("action, time or received_at missing")
	}
	f.day = timeStr[:10]
	if len(f.outcome) == 0 {
		f.outcome = dashOutcome
	}
	return f, nil
}

// jsonString reads the JSON string starting at b[i] == '"' and returns its
// raw contents (between the quotes, still escaped), whether it holds an
// escape, and the index after its closing quote.
func jsonString(b []byte, i int) (raw []byte, escaped bool, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, false, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return b[i+1 : j], escaped, j + 1, true
		}
	}
	return nil, false, 0, false
}

// unquote returns the value of a JSON string's raw contents.
func unquote(raw []byte, escaped bool) (string, bool) {
	if !escaped {
		return string(raw), true
	}
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if err := json.Unmarshal(q, &s); err != nil {
		return "", false
	}
	return s, true
}

// skipJSONValue returns the index after the object, array, number or
// literal starting at b[i] (strings inside are skipped whole), or -1.
func skipJSONValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			_, _, j, ok := jsonString(b, i)
			if !ok {
				return -1
			}
			i = j
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return -1
}
