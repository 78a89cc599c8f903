package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	"indelible.dev/eventstore"
	"indelible.dev/internal/pgtest"
	"indelible.dev/internal/s3test"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	"indelible.dev/ledger/kv/pgkv"
	"indelible.dev/receipt"
	itlog "indelible.dev/tlog"
)

// TestEraseUnderObjectLock: erase an event of a node that runs on a
// PostgreSQL store and mirrors its log to a bucket that keeps every version
// of every object (as a bucket under Object Lock does; the test server with
// versioning on). Then gather (a) every version of every object in the
// bucket, (b) a pg_dump of the database, (c) the database's heap files after
// CHECKPOINT, and show:
//
//   - neither the erased event's plaintext nor the control event's is in any
//     of them (the bucket holds commitments only; the store holds
//     ciphertext);
//   - the bytes the erasure deleted from the store (the event's payload,
//     with its wrapped event key) are in neither the bucket nor the dump;
//   - the dump, restored into a new database and opened with the master key
//     by the events layer's own code, opens the control event and not the
//     erased one (so the checks above could have failed: the dump does
//     carry what opens an event);
//   - every inclusion proof, the erased entry's included, verifies against
//     the bucket's checkpoint from the bucket's tiles alone, and the receipt
//     of the erased event handed out before the erasure still verifies.
//
// Out of scope, as SECURITY.md says: PostgreSQL's WAL, WAL archives and base
// backups (they keep a destroyed key for as long as they are kept). The heap
// files may still hold a deleted row's bytes in a page's free space until
// the page is rewritten (SECURITY.md): the test reports what it finds there
// and asserts only that no plaintext is there.
func TestEraseUnderObjectLock(t *testing.T) {
	pgtest.Need(t)
	bin := pgtest.Bin()
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{Versioning: true})
	bucketHTTP := srv.URL + "/" + s3test.Bucket
	dsn := pgtest.DSN(t)
	keyFile, vkey := newLogKey(t, "example.com/erase-bucket")
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	mk := make([]byte, 32)
	rand.Read(mk)
	masterFile := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(masterFile, []byte(hex.EncodeToString(mk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	p := startEvents(t, dir, "--store", dsn, "--bucket", s3test.BucketURL(srv.URL), "--key", keyFile, "--master-key", masterFile, "--init")
	c := p.client(t)
	ctx := t.Context()

	erased := "ERASED-plaintext-" + randHex(8)
	control := "CONTROL-plaintext-" + randHex(8)
	var evs []client.Event
	for k := range 3 {
		evs = append(evs, client.Event{Action: "doc.read", Actor: &client.Actor{ID: fmt.Sprint("filler-", k)}})
	}
	evs = append(evs,
		client.Event{Action: "doc.read", Actor: &client.Actor{ID: erased}, Reason: "reason " + erased},
		client.Event{Action: "doc.read", Actor: &client.Actor{ID: control}, Reason: "reason " + control})
	res, err := c.Append(ctx, evs, true)
	if err != nil || len(res) != len(evs) {
		t.Fatalf("append: %+v %v", res, err)
	}
	ei, ci := res[3].Index, res[4].Index
	policy, err := receipt.NewPolicy(vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	erasedReceipt, err := receipt.Verify([]byte(res[3].Receipt), policy)
	if err != nil || erasedReceipt.Event.Actor == nil || erasedReceipt.Event.Actor.ID != erased {
		t.Fatalf("the receipt of the event to erase: %+v, %v", erasedReceipt.Event, err)
	}

	before := storeRows(t, bin, dsn)
	code, body := httpDo(t, http.MethodDelete, fmt.Sprintf("%s/v1/events/%d?reason=%s", p.url, ei, url.QueryEscape("GDPR art. 17")), p.token)
	if code != http.StatusOK {
		t.Fatalf("DELETE event %d: %d %s", ei, code, body)
	}
	// More events after the erasure, so that the bucket's checkpoint is
	// replaced again (its older versions kept).
	if _, err := c.Append(ctx, []client.Event{{Action: "doc.read", Actor: &client.Actor{ID: "after"}}}, true); err != nil {
		t.Fatal(err)
	}
	after := storeRows(t, bin, dsn)
	// What the erasure destroyed: the rows it deleted (the payload, which
	// holds the wrapped event key, and the index keys); their values of at
	// least 32 bytes are what could open the event.
	var destroyed [][]byte
	for k, v := range before {
		if _, ok := after[k]; !ok && len(v) >= 32 {
			destroyed = append(destroyed, v)
		}
	}
	if len(destroyed) < 1 {
		t.Fatalf("the erasure deleted %d rows of 32 bytes or more: want at least the payload with its wrapped event key", len(destroyed))
	}

	// (a) Every version of every object in the bucket.
	objects := bucketVersions(t, bucketHTTP)
	checkpoints := 0
	for name := range objects {
		if strings.HasPrefix(name, "checkpoint@") {
			checkpoints++
		}
	}
	if checkpoints < 2 {
		t.Fatalf("%d versions of the bucket's checkpoint object: the bucket does not keep replaced versions", checkpoints)
	}
	// (b) The database dump.
	dumpFile := filepath.Join(t.TempDir(), "dump.sql")
	pgRun(t, bin, "pg_dump", "--no-owner", "--no-privileges", "-f", dumpFile, "-d", dsn)
	dump, err := os.ReadFile(dumpFile)
	if err != nil {
		t.Fatal(err)
	}
	// (c) The heap files, after a CHECKPOINT wrote every dirty page.
	psql(t, bin, dsn, "CHECKPOINT")
	dbDir := filepath.Join(psql(t, bin, dsn, "SHOW data_directory"), "base", psql(t, bin, dsn, "SELECT oid FROM pg_database WHERE datname = current_database()"))
	heap := map[string][]byte{}
	entries, err := os.ReadDir(dbDir)
	if err != nil {
		t.Fatalf("reading the database's files: %v", err)
	}
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dbDir, e.Name())); err == nil && len(b) > 0 {
			heap[e.Name()] = b
		}
	}
	if len(heap) == 0 {
		t.Fatalf("no heap files in %s", dbDir)
	}

	// The dump holds the store: every row that survived, in bytea's hex.
	hexDump := bytes.ToLower(dump)
	for k, v := range after {
		if len(v) >= 32 && !bytes.Contains(hexDump, []byte(hex.EncodeToString(v))) {
			t.Fatalf("the dump lacks row %x: the search below would prove nothing", k)
		}
	}
	// And the heap files hold the store's rows as stored (values this small
	// are stored inline, uncompressed).
	inHeap := func(v []byte) bool {
		for _, b := range heap {
			if bytes.Contains(b, v) {
				return true
			}
		}
		return false
	}
	for k, v := range after {
		if len(v) >= 32 && len(v) < 1000 && !inHeap(v) {
			t.Fatalf("the heap files lack row %x: the search below would prove nothing", k)
		}
	}
	for _, plain := range []string{erased, control} {
		for name, b := range objects {
			if bytes.Contains(b, []byte(plain)) {
				t.Errorf("%q is in the bucket's object %s", plain, name)
			}
		}
		if bytes.Contains(dump, []byte(plain)) || bytes.Contains(hexDump, []byte(hex.EncodeToString([]byte(plain)))) {
			t.Errorf("%q is in the database dump", plain)
		}
		for name, b := range heap {
			if bytes.Contains(b, []byte(plain)) {
				t.Errorf("%q is in the heap file %s", plain, name)
			}
		}
	}
	heapHits := 0
	for _, v := range destroyed {
		for name, b := range objects {
			if bytes.Contains(b, v) {
				t.Errorf("a value the erasure deleted (%d bytes) is in the bucket's object %s", len(v), name)
			}
		}
		if bytes.Contains(hexDump, []byte(hex.EncodeToString(v))) {
			t.Errorf("a value the erasure deleted (%d bytes) is in the database dump", len(v))
		}
		if inHeap(v) {
			heapHits++
		}
	}
	t.Logf("bucket: %d object versions (%d of checkpoint); dump %d bytes; %d heap files; "+
		"%d of the %d values the erasure deleted are still in the heap files' free space after VACUUM (SECURITY.md)",
		len(objects), checkpoints, len(dump), len(heap), heapHits, len(destroyed))

	// The dump opens events with the master key: restored into a new
	// database, the events layer's own code opens the control event, and
	// the erased one does not open.
	restored := pgtest.DSN(t)
	pgRun(t, bin, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", dumpFile, "-d", restored)
	openFromDump(t, restored, keyFile, mk, func(el *eventstore.Layer) {
		r, err := el.Get(ci)
		if err != nil || r.Event.Actor == nil || r.Event.Actor.ID != control || r.Event.Reason != "reason "+control {
			t.Fatalf("the control event from the dump: %+v, %v", r.Event, err)
		}
		_, err = el.Get(ei)
		var ee *eventstore.ErasedError
		if !errors.As(err, &ee) {
			t.Fatalf("the erased event from the dump: %v, want an ErasedError", err)
		}
	})

	// Every proof verifies against the bucket's checkpoint, from the
	// bucket alone.
	hc := &http.Client{Timeout: 10 * time.Second}
	var cp itlog.Checkpoint
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		cp, err = getCheckpoint(ctx, hc, bucketHTTP, verifier)
		if err == nil && cp.N > ci+1 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || cp.N <= ci+1 {
		t.Fatalf("the bucket's checkpoint: %+v, %v", cp.Tree, err)
	}
	bc := logClient(t, bucketHTTP)
	hr := tlog.TileHashReader(cp.Tree, tlogtest.TileReader{URL: bucketHTTP, Client: hc})
	for b := int64(0); b*256 < cp.N; b++ {
		leaves, err := getBundle(bc, b, int(min(cp.N-b*256, 256)))
		if err != nil {
			t.Fatal(err)
		}
		for k, entry := range leaves {
			i := b*256 + int64(k)
			proof, err := tlog.ProveRecord(cp.N, i, hr)
			if err != nil {
				t.Fatalf("proving entry %d from the bucket's tiles: %v", i, err)
			}
			if err := tlog.CheckRecord(proof, cp.N, cp.Hash, i, tlog.RecordHash(entry)); err != nil {
				t.Fatalf("entry %d does not verify against the bucket's checkpoint: %v", i, err)
			}
			if i == ei && !bytes.Equal(entry, erasedReceipt.Commitment[:]) {
				t.Fatalf("the erased event's log entry %x is not its receipt's commitment %x", entry, erasedReceipt.Commitment)
			}
		}
	}
	if _, err := receipt.Verify([]byte(res[3].Receipt), policy); err != nil {
		t.Fatalf("the erased event's receipt after the erasure: %v", err)
	}
	p.stop(t)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// pgRun runs one of PostgreSQL's programs.
func pgRun(t *testing.T, bin, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(bin, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// psql runs one statement and returns its unaligned output, without the
// last newline.
func psql(t *testing.T, bin, dsn, sql string) string {
	t.Helper()
	return strings.TrimSuffix(pgRun(t, bin, "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql), "\n")
}

// storeRows reads the store's table: key (hex) to value.
func storeRows(t *testing.T, bin, dsn string) map[string][]byte {
	t.Helper()
	rows := map[string][]byte{}
	for line := range strings.Lines(psql(t, bin, dsn, "SELECT encode(k, 'hex') || ' ' || encode(v, 'hex') FROM indelible_kv")) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\n"), " ")
		b, err := hex.DecodeString(v)
		if !ok || err != nil {
			t.Fatalf("row %q", line)
		}
		rows[k] = b
	}
	return rows
}

// bucketVersions reads every version of every object of the bucket at
// bucketHTTP (GET ?versions, then GET ?versionId=): "KEY@VERSION" to bytes.
func bucketVersions(t *testing.T, bucketHTTP string) map[string][]byte {
	t.Helper()
	type version struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId"`
	}
	var list struct {
		IsTruncated         bool      `xml:"IsTruncated"`
		NextKeyMarker       string    `xml:"NextKeyMarker"`
		NextVersionIDMarker string    `xml:"NextVersionIdMarker"`
		Versions            []version `xml:"Version"`
	}
	get := func(u string) []byte {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v\n%s", u, resp.StatusCode, err, b)
		}
		return b
	}
	objects := map[string][]byte{}
	q := url.Values{"versions": {""}}
	for {
		list.Versions, list.IsTruncated = nil, false
		if err := xml.Unmarshal(get(bucketHTTP+"?"+q.Encode()), &list); err != nil {
			t.Fatalf("listing the bucket's versions: %v", err)
		}
		for _, v := range list.Versions {
			objects[v.Key+"@"+v.VersionID] = get(bucketHTTP + "/" + v.Key + "?versionId=" + url.QueryEscape(v.VersionID))
		}
		if !list.IsTruncated {
			break
		}
		q.Set("key-marker", list.NextKeyMarker)
		q.Set("version-id-marker", list.NextVersionIDMarker)
	}
	if len(objects) == 0 {
		t.Fatal("the bucket holds no object")
	}
	return objects
}

// openFromDump opens the log and its events layer on the database dsn (a
// restored dump), with the log key and the master key, and calls f.
func openFromDump(t *testing.T, dsn, keyFile string, master []byte, f func(*eventstore.Layer)) {
	t.Helper()
	skey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	st, err := pgkv.Open(context.Background(), dsn, pgkv.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: signer, Store: st, Logger: quiet, MinFreeBytes: -1})
	if err != nil {
		st.Close()
		t.Fatalf("opening the restored dump's log: %v", err)
	}
	defer l.Close()
	kr, err := eventstore.NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	el, err := eventstore.Open(eventstore.Config{Log: l, Keyring: kr, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer el.Close()
	f(el)
}
