package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/cockroachdb/pebble/v2/vfs"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	"indelible.dev/receipt"
	itlog "indelible.dev/tlog"
)

// snapshot is the public face of the log at one size: every tile of it
// (hash tiles and entry bundles) and its checkpoint's tree.
type snapshot struct {
	n     int64
	root  tlog.Hash
	tiles map[string][]byte
}

func takeSnapshot(t *testing.T, l *ledger.Log) snapshot {
	t.Helper()
	cp, _ := l.Published()
	s := snapshot{n: cp.N, root: cp.Hash, tiles: map[string][]byte{}}
	for _, tl := range tlog.NewTiles(itlog.TileHeight, 0, cp.N) {
		for _, x := range []tlog.Tile{tl, {H: tl.H, L: itlog.EntriesLevel, N: tl.N, W: tl.W}} {
			if x.L == itlog.EntriesLevel && tl.L != 0 {
				continue
			}
			b, err := l.ReadTile(x)
			if err != nil {
				t.Fatalf("tile %v: %v", x, err)
			}
			s.tiles[x.Path()] = b
		}
	}
	return s
}

// checkLogIntact: the tiles of the earlier snapshot are byte-for-byte what
// the log serves now, every index's inclusion proof verifies in the current
// tree, and the current tree is consistent with the earlier one.
func checkLogIntact(t *testing.T, l *ledger.Log, before snapshot) {
	t.Helper()
	for path, b := range before.tiles {
		tl, err := tlog.ParseTilePath(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.ReadTile(tl)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("tile %s changed (%v)", path, err)
		}
	}
	cp, _ := l.Published()
	for i := range cp.N {
		e, err := l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.InclusionProof(i, cp.N)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, cp.N, cp.Hash, i, tlog.RecordHash(e)); err != nil {
			t.Fatalf("inclusion of %d in %d: %v", i, cp.N, err)
		}
	}
	p, err := l.ConsistencyProof(before.n, cp.N)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(p, cp.N, cp.Hash, before.n, before.root); err != nil {
		t.Fatalf("consistency %d -> %d: %v", before.n, cp.N, err)
	}
}

// verifyReceipt checks the receipt of event i offline, as indelible verify does.
func verifyReceipt(t *testing.T, e *env, i int64) {
	t.Helper()
	if _, _, err := e.log.WaitSize(context.Background(), i+1); err != nil {
		t.Fatal(err)
	}
	rc, err := e.l.Receipt(i)
	if err != nil {
		t.Fatalf("receipt of %d: %v", i, err)
	}
	v, err := note.NewVerifier(e.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := receipt.Verify(rc, itlog.Policy{Log: v}); err != nil {
		t.Fatalf("receipt of %d: %v", i, err)
	}
}

// secretsOf returns the secrets of stored event i: its salt, its event
// key (raw) and its wrapped event key (from its payload, version 3, or its
// 't' value, version 2), read with the master key's help.
func secretsOf(t *testing.T, e *env, i int64) (salt, ekey, wrapped []byte) {
	t.Helper()
	r, err := e.l.Get(i)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.log.GetExt(payloadKey(i))
	if err != nil {
		t.Fatal(err)
	}
	day, tk, err := payloadDay(v)
	if err != nil || v[0] == payloadV1 {
		t.Fatalf("event %d: payload version %d: %v", i, v[0], err)
	}
	w := v[9:payloadHeaderV3]
	if tk != nil {
		tval, err := e.log.GetExt(timeIndexKey(tk, i))
		if err != nil {
			t.Fatal(err)
		}
		w = tval[:wrappedEventKeySize]
	}
	d, err := e.l.dayKeyFor(day, false)
	if err != nil {
		t.Fatal(err)
	}
	ekey, err = d.aead.Open(nil, w[:nonceSize], w[nonceSize:], eventKeyAAD(r.Commitment[:]))
	if err != nil {
		t.Fatal(err)
	}
	return r.Salt[:], ekey, bytes.Clone(w)
}

// payloadVersions runs f for events sealed as today (version 3) and, in a
// mixed store, as the previous release sealed them (version 2): the events
// f appends before calling mixed are version 2, the store is then reopened
// and every event appended after is version 3. fs is the env's file system
// (nil: a directory).
func payloadVersions(t *testing.T, fs func() vfs.FS, f func(t *testing.T, e *env, mixed func())) {
	newFS := func() vfs.FS {
		if fs == nil {
			return nil
		}
		return fs()
	}
	t.Run("v3", func(t *testing.T) {
		f(t, newEnv(t, newFS()), func() {})
	})
	t.Run("v2-mixed", func(t *testing.T) {
		e := newEnv(t, newFS())
		e.l.sealV2 = true
		f(t, e, func() {
			t.Helper()
			e.l.sealV2 = false
			e.reopen()
			if e.l.v3From.Load() == 0 {
				t.Fatal("no version-2 payload before the reopen")
			}
		})
	})
}

// copyDir copies the data directory as it is on disk.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	// The store is live: a compaction or the background purge may delete a
	// file between the listing and its copy. Copy again until one pass
	// sees every file it listed.
	for try := 0; ; try++ {
		dst := t.TempDir()
		err := os.CopyFS(dst, os.DirFS(src))
		if err == nil {
			return dst
		}
		if !errors.Is(err, fs.ErrNotExist) || try == 20 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// purged waits until no purge of destroyed bytes is pending (one cut short
// by a reader holding old files is retried in the background).
func purged(t *testing.T, e *env) {
	t.Helper()
	tlogtest.Eventually(t, 30*time.Second, "pending purges to finish", func() (bool, string) {
		n := e.l.Lifecycle().PendingPurges
		return n == 0, fmt.Sprintf("%d pending", n)
	})
}

// openCopy opens a copy of the data directory with the master key.
func openCopy(t *testing.T, e *env, dir string) (*ledger.Log, *Layer) {
	t.Helper()
	log, err := ledger.Open(dir, ledger.Options{Signer: e.signer, Logger: slog.New(slog.DiscardHandler), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := NewKeyring(e.master)
	l, err := Open(Config{Log: log, Keyring: kr, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); log.Close() })
	return log, l
}

func actions(t *testing.T, e *env, action string) []Record {
	t.Helper()
	return e.listAll(mustQuery(t, "action", action))
}

// TestErase: an erased event is gone (410 with its tombstone from Get and
// Receipt, skipped by queries and streams, its index and idempotency keys
// deleted), the erasure is an event in the log with a verifying receipt,
// the log's tiles and proofs are unchanged, and the event's bytes, salt and
// keys are in no file of the data directory afterwards.
func TestErase(t *testing.T) { payloadVersions(t, nil, testErase) }

func testErase(t *testing.T, e *env, mixed func()) {
	const marker = "ERASE-ME-7f3a9c"
	at := e.clock.Now()
	var evs []event.Event
	for k := range 20 {
		x := ev("alice", "read", "res", "success", "kube", at.Add(time.Duration(k)*time.Second))
		x.ID = "id-" + string(rune('a'+k))
		if k == 7 {
			x.Reason = marker
		}
		evs = append(evs, x)
	}
	a := e.append("writer", evs...)
	mixed()
	target := a[7].Index
	salt, ekey, wrapped := secretsOf(t, e, target)
	if _, _, err := e.log.WaitSize(context.Background(), a[19].Index+1); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, e.log)

	// Refusals.
	if _, err := e.l.Erase(context.Background(), target, "admin", ""); !errors.Is(err, ErrBadErase) {
		t.Fatalf("no reason: %v", err)
	}
	if _, err := e.l.Erase(context.Background(), target, "admin", strings.Repeat("x", MaxEraseReason+1)); !errors.Is(err, ErrBadErase) {
		t.Fatalf("long reason: %v", err)
	}
	if _, err := e.l.Erase(context.Background(), 1000, "admin", "gdpr"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("beyond the log: %v", err)
	}

	ts, err := e.l.Erase(context.Background(), target, "admin", "GDPR request 42")
	if err != nil {
		t.Fatal(err)
	}
	if ts.Index != target || ts.ErasedBy != "admin" || ts.Reason != "GDPR request 42" || ts.EraseIndex <= target {
		t.Fatalf("tombstone %+v", ts)
	}
	var ee *ErasedError
	if _, err := e.l.Get(target); !errors.As(err, &ee) || ee.Tombstone != ts || !errors.Is(err, ErrGone) {
		t.Fatalf("Get after erasure: %v", err)
	}
	if _, err := e.l.Receipt(target); !errors.As(err, &ee) {
		t.Fatalf("Receipt after erasure: %v", err)
	}
	if _, err := e.l.Erase(context.Background(), target, "admin", "again"); !errors.As(err, &ee) || ee.Tombstone != ts {
		t.Fatalf("second erasure: %v", err)
	}
	// Queries and pages skip it, with no gap and no duplicate.
	q := mustQuery(t, "actor", "alice", "limit", "3")
	got := e.listAll(q)
	if len(got) != 19 {
		t.Fatalf("query after erasure: %d events, want 19", len(got))
	}
	seen := map[int64]bool{}
	for _, r := range got {
		if r.Index == target || seen[r.Index] {
			t.Fatalf("query returned %d twice or the erased event", r.Index)
		}
		seen[r.Index] = true
	}
	if n := len(e.listAll(mustQuery(t, "outcome", "success", "action", "read"))); n != 19 {
		t.Fatalf("outcome query: %d", n)
	}
	// The stream skips it.
	ctx, cancel := context.WithCancel(context.Background())
	var streamed []int64
	err = e.l.Stream(ctx, Query{}, -1, func(r Record) error {
		streamed = append(streamed, r.Index)
		if r.Index >= ts.EraseIndex {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	for _, i := range streamed {
		if i == target {
			t.Fatal("stream returned the erased event")
		}
	}
	// The id is free again (its idempotency key is gone).
	x := ev("alice", "read", "res", "success", "kube", at)
	x.ID = evs[7].ID
	if r := e.append("writer", x); r[0].Duplicate {
		t.Fatal("the erased event's id still maps to it")
	}
	// The erasure is recorded.
	rec := actions(t, e, ActionErase)
	if len(rec) != 1 || rec[0].Index != ts.EraseIndex || rec[0].Event.Actor.ID != "admin" || rec[0].Event.SubmittedBy != "admin" ||
		string(rec[0].Event.Metadata) != `{"index":7,"reason":"GDPR request 42"}` {
		t.Fatalf("erase events %+v", rec)
	}
	verifyReceipt(t, e, ts.EraseIndex)
	checkLogIntact(t, e.log, before)
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}

	// Gone means gone: a copy of the directory, read with the master key.
	purged(t, e)
	dir := storeCopy(t, e.dir, map[string][]byte{"marker": []byte(marker), "salt": salt, "event key": ekey, "wrapped event key": wrapped})
	e.close()
	log, l := openCopy(t, e, dir)
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(target); !errors.As(err, &ee) {
		t.Fatalf("Get in the copy: %v", err)
	}
	c, _ := log.Entry(target)
	if err := log.ScanExt(nil, nil, false, func(k, v []byte) bool {
		if bytes.Contains(v, wrapped) || bytes.Contains(v, ekey) || bytes.Contains(v, salt) {
			t.Errorf("key %x holds a secret of the erased event", k)
		}
		// No value opens as the erased event's payload under its event
		// key, nor holds its wrapped key (at the start of a version-2 't'
		// value, in a version-3 payload's header) under any day key.
		for _, hdr := range []int{payloadHeaderV2, payloadHeaderV3} {
			if len(v) > hdr+tagSize {
				if aead, _ := newAEAD(ekey); aead != nil {
					if _, err := aead.Open(nil, zeroNonce[:], v[hdr:], c); err == nil {
						t.Errorf("key %x opens as the erased event", k)
					}
				}
			}
		}
		for _, at := range []int{0, 9} {
			if len(v) >= at+wrappedEventKeySize {
				w := v[at : at+wrappedEventKeySize]
				for _, d := range l.days {
					if _, err := d.aead.Open(nil, w[:nonceSize], w[nonceSize:], eventKeyAAD(c)); err == nil {
						t.Errorf("key %x holds the erased event's key", k)
					}
				}
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRetention: a retention pass shreds the UTC days entirely past
// retention in one step (data key, payloads, index and idempotency keys),
// records an indelible.retention event, keeps the log intact, and leaves
// the day's key and events in no file; later days stay readable.
func TestRetention(t *testing.T) { payloadVersions(t, nil, testRetention) }

func testRetention(t *testing.T, e *env, mixed func()) {
	const marker = "SHRED-ME-c41d"
	day1 := e.clock.Now()
	var old []Appended
	for k := range 3 {
		x := ev("bob", "login", "", "failure", "sso", day1)
		x.ID = "old-" + string(rune('a'+k))
		x.Reason = marker
		old = append(old, e.append("writer", x)...)
	}
	mixed()
	v2 := e.l.v3From.Load() > old[1].Index
	// Its day key, wrapped as stored.
	wrappedDay, err := e.log.GetExt(dayKeyKey(dayOf(day1)))
	if err != nil {
		t.Fatal(err)
	}
	_, ekey, wrapped := secretsOf(t, e, old[1].Index)
	e.clock.Add(24 * time.Hour)
	recent := e.append("writer", ev("bob", "login", "", "success", "sso", e.clock.Now()))
	if _, _, err := e.log.WaitSize(context.Background(), recent[0].Index+1); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, e.log)

	e.l.retention = 400 * 24 * time.Hour
	if days, err := e.l.Retain(context.Background()); err != nil || len(days) != 0 {
		t.Fatalf("nothing is past retention yet: %v %v", days, err)
	}
	e.clock.Add(400*24*time.Hour - time.Hour) // day1 ended 400 days ago; day 2 has not
	// The log is in use (a clock 400 days past the newest event would be
	// held back: TestRetentionClockJump).
	e.append("writer", ev("carol", "login", "", "success", "sso", e.clock.Now()))
	days, err := e.l.Retain(context.Background())
	if err != nil || len(days) != 1 || !days[0].Equal(dayTime(dayOf(day1))) {
		t.Fatalf("Retain: %v %v", days, err)
	}
	var se *ShreddedError
	for _, a := range old {
		if _, err := e.l.Get(a.Index); !errors.As(err, &se) || !errors.Is(err, ErrGone) {
			t.Fatalf("Get of a shredded event: %v", err)
		}
		if _, err := e.l.Receipt(a.Index); !errors.As(err, &se) {
			t.Fatalf("Receipt of a shredded event: %v", err)
		}
	}
	if got := e.listAll(mustQuery(t, "actor", "bob")); len(got) != 1 || got[0].Index != recent[0].Index {
		t.Fatalf("query after retention: %+v", got)
	}
	if got := e.listAll(mustQuery(t, "outcome", "failure")); len(got) != 0 {
		t.Fatalf("outcome query after retention: %d", len(got))
	}
	x := ev("bob", "login", "", "failure", "sso", day1)
	x.ID = "old-a"
	if r := e.append("writer", x); r[0].Duplicate {
		t.Fatal("a shredded day's id still maps to its event")
	}
	rec := actions(t, e, ActionRetention)
	if len(rec) != 1 || rec[0].Event.Actor.ID != ServerActor || rec[0].Event.SubmittedBy != ServerActor ||
		!strings.Contains(string(rec[0].Event.Metadata), dayTime(dayOf(day1)).Format(time.DateOnly)) {
		t.Fatalf("retention events %+v", rec)
	}
	verifyReceipt(t, e, rec[0].Index)
	if _, err := e.l.Get(recent[0].Index); err != nil {
		t.Fatalf("a day within retention: %v", err)
	}
	checkLogIntact(t, e.log, before)
	if err := e.l.Check(); err != nil {
		t.Fatal(err)
	}
	if days, err := e.l.Retain(context.Background()); err != nil || len(days) != 0 {
		t.Fatalf("second pass: %v %v", days, err)
	}

	purged(t, e)
	secrets := map[string][]byte{"marker": []byte(marker), "wrapped day key": wrappedDay, "event key": ekey}
	if !v2 {
		// In the payload, whose range the purge compacts. A version-2
		// event's is in its 't' value, deleted in step 1 but not purged:
		// under the destroyed day key, it may linger and opens nothing.
		secrets["wrapped event key"] = wrapped
	}
	dir := storeCopy(t, e.dir, secrets)
	e.close()
	log, l := openCopy(t, e, dir)
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(old[0].Index); !errors.As(err, &se) {
		t.Fatalf("Get in the copy: %v", err)
	}
	if err := log.ScanExt(nil, nil, false, func(k, v []byte) bool {
		if bytes.Contains(v, wrappedDay) {
			t.Errorf("key %x holds the shredded day's key", k)
		}
		if len(k) == 9 && k[0] == prefixDayKey && int64(binary.BigEndian.Uint64(k[1:])) == dayOf(day1) {
			t.Errorf("the shredded day's key is still stored")
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
}
