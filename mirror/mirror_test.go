package mirror

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/s3test"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// node is a ledger with a mirror, both real: pebble in a temporary
// directory, the bucket on an s3server process.
type node struct {
	l   *ledger.Log
	m   *Mirror
	reg *prometheus.Registry
}

func openNode(t *testing.T, dir, endpoint string, key tlogtest.Key) (*node, error) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(context.Background(), Config{Bucket: s3test.BucketURL(endpoint), Verifier: key.Verifier,
		Registerer: reg, Retry: 50 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	l, err := ledger.Open(dir, ledger.Options{Signer: key.Signer, Hooks: []ledger.PublishHook{m}, MinFreeBytes: -1})
	if err != nil {
		return nil, err
	}
	return &node{l: l, m: m, reg: reg}, nil
}

func mustOpen(t *testing.T, dir, endpoint string, key tlogtest.Key) *node {
	t.Helper()
	n, err := openNode(t, dir, endpoint, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.l.Close() })
	return n
}

func appendN(t *testing.T, l *ledger.Log, from, n int) {
	t.Helper()
	for lo := from; lo < from+n; lo += 10000 {
		var es []ledger.Entry
		for i := lo; i < min(lo+10000, from+n); i++ {
			es = append(es, ledger.Entry{Data: fmt.Appendf(nil, "entry %d", i)})
		}
		if _, err := l.AppendEntries(context.Background(), es); err != nil {
			t.Fatal(err)
		}
	}
}

// waitMirrored waits until the checkpoint served is at size n.
func waitMirrored(t *testing.T, l *ledger.Log, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := l.WaitSize(ctx, n); err != nil {
		t.Fatalf("waiting for a released checkpoint of size %d: %v", n, err)
	}
}

// bucketGet reads an object over plain HTTP, as any client of the bucket.
func bucketGet(t *testing.T, server, key string) (int, []byte, http.Header) {
	t.Helper()
	code, b, hdr, err := bucketTryGet(server, key)
	if err != nil {
		t.Fatal(err)
	}
	return code, b, hdr
}

// bucketTryGet is bucketGet returning the error, for reads that may race
// a replacement of the object.
func bucketTryGet(server, key string) (int, []byte, http.Header, error) {
	resp, err := http.Get(server + "/" + s3test.Bucket + "/" + key)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

// bucketKeys lists the bucket.
func bucketKeys(t *testing.T, b *bucket, prefix string) []string {
	t.Helper()
	var keys []string
	if err := b.list(context.Background(), prefix, func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestMirrorLayout: the bucket holds, byte for byte, the server's tiles and
// bundles (full and partial) for every released size, each released
// checkpoint at checkpoints/<size>, and the served checkpoint at
// checkpoint, with the C2SP headers; tessera's client reads it.
func TestMirrorLayout(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	testMirrorLayout(t, srv)
}

// testMirrorLayout is TestMirrorLayout's body on the server srv (gofakes3,
// or SeaweedFS in TestMirrorWeed). It returns the node and the log's size.
func testMirrorLayout(t *testing.T, srv *s3test.Server) (*node, int) {
	t.Helper()
	key := tlogtest.NewKey(t, "example.com/mirror")
	n := mustOpen(t, t.TempDir(), srv.URL, key)
	waitMirrored(t, n.l, 0)
	total := 0
	for _, k := range []int{1, 5, 250, 3, 300, 1, 70000 - 560} {
		appendN(t, n.l, total, k)
		total += k
		waitMirrored(t, n.l, int64(total))
	}
	cp, body := n.l.Checkpoint()
	if cp.N != int64(total) {
		t.Fatalf("served size %d, want %d", cp.N, total)
	}

	// The checkpoint object is the served one (replaced just after the
	// release); not cacheable.
	var hdr http.Header
	tlogtest.Eventually(t, 10*time.Second, "the bucket's checkpoint is the served one", func() (bool, string) {
		code, got, h, err := bucketTryGet(srv.URL, "checkpoint") // may race a replacement: see TestMirrorWitnessing
		if err != nil {
			return false, err.Error()
		}
		hdr = h
		return code == 200 && bytes.Equal(got, body), fmt.Sprintf("%d %q, want %q", code, got, body)
	})
	if hdr.Get("Cache-Control") != cacheNoCache || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("checkpoint headers: %v", hdr)
	}

	b, err := newBucket(context.Background(), Location{Bucket: s3test.Bucket, Endpoint: srv.URL, Region: "us-east-1", PathStyle: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every checkpoints/<size> is the log's signed note for that size.
	sizes := map[int64]bool{}
	for _, k := range bucketKeys(t, b, "checkpoints/") {
		size, err := itlog.ParseSize(strings.TrimPrefix(k, "checkpoints/"))
		if err != nil {
			t.Fatalf("bucket key %q", k)
		}
		sizes[size] = true
		_, data, _ := bucketGet(t, srv.URL, k)
		root, err := n.l.TreeHash(size)
		if err != nil {
			t.Fatal(err)
		}
		want, err := itlog.SignCheckpoint(itlog.Checkpoint{Origin: key.Signer.Name(), Tree: tlog.Tree{N: size, Hash: root}}, key.Signer)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want) {
			t.Fatalf("%s: %q, want %q", k, data, want)
		}
	}
	if !sizes[0] || !sizes[int64(total)] {
		t.Fatalf("checkpoints/ lacks size 0 or %d: %v", total, sizes)
	}

	// Every tile in the bucket equals the server's; every tile implied by
	// a released size is there; full tiles are immutable for caches.
	tiles := map[string]bool{}
	for _, k := range bucketKeys(t, b, "tile/") {
		tl, err := itlog.ParseTilePath(k)
		if err != nil {
			t.Fatalf("bucket key %q: %v", k, err)
		}
		want, err := n.l.ReadTile(tl)
		if err != nil {
			t.Fatalf("%s: the server has no such tile: %v", k, err)
		}
		code, got, hdr := bucketGet(t, srv.URL, k)
		if code != 200 || !bytes.Equal(got, want) {
			t.Fatalf("%s: bucket has %d bytes, server %d", k, len(got), len(want))
		}
		if tl.W == itlog.TileWidth && hdr.Get("Cache-Control") != cacheImmutable {
			t.Fatalf("%s: Cache-Control %q", k, hdr.Get("Cache-Control"))
		}
		tiles[k] = true
	}
	for size := range sizes {
		for _, tl := range tlog.NewTiles(itlog.TileHeight, 0, size) {
			e := tl
			if tl.L == 0 {
				e.L = itlog.EntriesLevel
			}
			if !tiles[itlog.TilePath(tl)] || !tiles[itlog.TilePath(e)] {
				t.Fatalf("size %d: %s or its bundle missing from the bucket", size, itlog.TilePath(tl))
			}
		}
	}
	if len(tiles) < 2*273 {
		t.Fatalf("only %d tiles in the bucket", len(tiles))
	}

	// tessera's client reads the bucket as a log.
	ctx := context.Background()
	root, _ := url.Parse(srv.URL + "/" + s3test.Bucket + "/")
	f, err := tclient.NewHTTPFetcher(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	tcp, _, _, err := tclient.FetchCheckpoint(ctx, f.ReadCheckpoint, key.Verifier, key.Signer.Name())
	if err != nil || tcp.Size != uint64(total) {
		t.Fatalf("tessera FetchCheckpoint: %+v, %v", tcp, err)
	}
	pb, err := tclient.NewProofBuilder(ctx, tcp.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 255, 256, 40000, int64(total) - 1} {
		p, err := pb.InclusionProof(ctx, uint64(i))
		if err != nil {
			t.Fatalf("tessera inclusion proof of %d: %v", i, err)
		}
		var rp tlog.RecordProof
		for _, h := range p {
			rp = append(rp, tlog.Hash(h))
		}
		leaf := tlog.RecordHash(fmt.Appendf(nil, "entry %d", i))
		if err := tlog.CheckRecord(rp, cp.N, cp.Hash, i, leaf); err != nil {
			t.Fatalf("inclusion of %d from the bucket: %v", i, err)
		}
	}
	eb, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, 273, tcp.Size)
	if err != nil || len(eb.Entries) != total%256 || string(eb.Entries[0]) != fmt.Sprintf("entry %d", 273*256) {
		t.Fatalf("tessera GetEntryBundle(273): %d entries, %v", len(eb.Entries), err)
	}
	if got := testutil.ToFloat64(n.m.failures); got != 0 {
		t.Errorf("%v failed rounds on a healthy bucket", got)
	}
	return n, total
}

// TestMirrorProbeRefuses: a store that ignores If-None-Match (and
// If-Match) is refused at start.
func TestMirrorProbeRefuses(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{IgnoreConditions: true})
	key := tlogtest.NewKey(t, "example.com/mirror")
	_, err := openNode(t, t.TempDir(), srv.URL, key)
	if err == nil || !strings.Contains(err.Error(), "ignores If-None-Match") {
		t.Fatalf("open against a bucket ignoring conditions: %v", err)
	}
}

// TestMirrorReleaseRule: with the bucket cut off, appends are acknowledged
// but no new checkpoint is released (Checkpoint, WaitSize stall); after
// healing the mirror catches up and releases.
func TestMirrorReleaseRule(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	proxy := s3test.NewProxy(t, srv.Addr)
	key := tlogtest.NewKey(t, "example.com/mirror")
	n := mustOpen(t, t.TempDir(), proxy.URL(), key)
	appendN(t, n.l, 0, 10)
	waitMirrored(t, n.l, 10)

	proxy.Cut()
	appendN(t, n.l, 10, 20) // acknowledged: durable in the store
	if pub, _ := n.l.Published(); pub.N != 30 {
		t.Fatalf("published %d, want 30", pub.N)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, _, err := n.l.WaitSize(ctx, 30)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSize(30) with the bucket cut off: %v", err)
	}
	if cp, _ := n.l.Checkpoint(); cp.N != 10 {
		t.Fatalf("served a checkpoint of size %d with the bucket cut off", cp.N)
	}
	code, got, _ := bucketGet(t, srv.URL, "checkpoints/30")
	if code != 404 {
		t.Fatalf("checkpoints/30 exists (%d %q) though the bucket was cut off", code, got)
	}
	tlogtest.Eventually(t, 10*time.Second, "failed rounds counted", func() (bool, string) {
		v := testutil.ToFloat64(n.m.failures)
		return v > 0, fmt.Sprint(v)
	})
	if lag := testutil.CollectAndCount(n.reg, "indelible_mirror_lag_entries"); lag != 1 {
		t.Fatalf("lag metric: %d series", lag)
	}

	proxy.Heal()
	waitMirrored(t, n.l, 30)
	if code, _, _ := bucketGet(t, srv.URL, "checkpoints/30"); code != 200 {
		t.Fatalf("checkpoints/30 after healing: %d", code)
	}
}

// TestMirrorResume: a restarted node resumes from its watermark: it creates
// nothing that is already in the bucket, and goes on from there.
func TestMirrorResume(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	key := tlogtest.NewKey(t, "example.com/mirror")
	dir := t.TempDir()
	n, err := openNode(t, dir, srv.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, n.l, 0, 598)
	waitMirrored(t, n.l, 598)
	appendN(t, n.l, 598, 2)
	_, signed := n.l.Published()
	if err := n.l.Close(); err != nil {
		t.Fatal(err)
	}
	// Close gave the bucket the last checkpoint.
	if code, got, _ := bucketGet(t, srv.URL, "checkpoint"); code != 200 || !bytes.Equal(got, signed) {
		t.Fatalf("bucket checkpoint after Close: %d %q, want %q", code, got, signed)
	}

	n = mustOpen(t, dir, srv.URL, key)
	if v, err := n.l.HookState(watermarkName); err != nil || string(v) != "600" {
		t.Fatalf("watermark %q, %v", v, err)
	}
	waitMirrored(t, n.l, 600)
	if got := testutil.ToFloat64(n.m.uploads); got != 0 {
		t.Fatalf("a restart at the watermark created %v objects", got)
	}
	appendN(t, n.l, 600, 1)
	waitMirrored(t, n.l, 601)
	// 601: tile/0/002.p/89, its bundle and checkpoints/601 (level 1 is
	// unchanged: two hashes at 600 and at 601).
	if got := testutil.ToFloat64(n.m.uploads); got != 3 {
		t.Fatalf("after one more entry the restarted node created %v objects, want 3", got)
	}
	if err := n.l.Close(); err != nil {
		t.Fatal(err)
	}

	// A watermark lost (rewound to 0) while the store went ahead of the
	// bucket (10 entries appended without the mirror): the restarted node
	// uploads from 0 again; every object already there compares equal (no
	// fork), and only the new ones are created.
	l, err := ledger.Open(dir, ledger.Options{Signer: key.Signer, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 601, 10)
	if err := l.SetHookState(watermarkName, []byte("0")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	n = mustOpen(t, dir, srv.URL, key)
	waitMirrored(t, n.l, 611)
	// 611: tile/0/002.p/99, its bundle and checkpoints/611.
	if got := testutil.ToFloat64(n.m.uploads); got != 3 {
		t.Fatalf("re-mirroring from 0 created %v objects, want 3", got)
	}
	if err := n.l.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorBucketAhead: a store restored from an older copy, or another
// store under the same key, is refused before it signs anything new.
func TestMirrorBucketAhead(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	key := tlogtest.NewKey(t, "example.com/mirror")
	dir := filepath.Join(t.TempDir(), "store")
	n, err := openNode(t, dir, srv.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, n.l, 0, 10)
	waitMirrored(t, n.l, 10)
	n.l.Close()
	backup := filepath.Join(t.TempDir(), "backup")
	if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	n = mustOpen(t, dir, srv.URL, key)
	appendN(t, n.l, 10, 10)
	waitMirrored(t, n.l, 20)
	n.l.Close()

	_, err = openNode(t, backup, srv.URL, key)
	if !errors.Is(err, ledger.ErrKeyGuard) || !strings.Contains(err.Error(), "ahead of the store's 10 entries") {
		t.Fatalf("opening an older copy of the store: %v", err)
	}
	// Without the checkpoint object (a crash between creating
	// checkpoints/<size> and replacing checkpoint), checkpoints/ tells.
	b, err := newBucket(context.Background(), Location{Bucket: s3test.Bucket, Endpoint: srv.URL, Region: "us-east-1", PathStyle: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s3test.Bucket), Key: aws.String("checkpoint")}); err != nil {
		t.Fatal(err)
	}
	_, err = openNode(t, backup, srv.URL, key)
	if !errors.Is(err, ledger.ErrKeyGuard) || !strings.Contains(err.Error(), "the bucket's checkpoints/20 is at size 20, ahead of the store's 10 entries") {
		t.Fatalf("opening an older copy of the store, no checkpoint object: %v", err)
	}

	// An object under checkpoints/ that the log's key did not sign.
	if _, err := b.put(context.Background(), "checkpoints/99999", []byte("junk\n"), typeCheckpoint, cacheImmutable, true, ""); err != nil {
		t.Fatal(err)
	}
	_, err = openNode(t, dir, srv.URL, key)
	if !errors.Is(err, ledger.ErrKeyGuard) || !strings.Contains(err.Error(), "the bucket's checkpoints/99999 is not a checkpoint of this log") {
		t.Fatalf("opening with a planted checkpoints/ object: %v", err)
	}
	if _, err := b.c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s3test.Bucket), Key: aws.String("checkpoints/99999")}); err != nil {
		t.Fatal(err)
	}

	// Another store of 20 other entries under the same key.
	other := filepath.Join(t.TempDir(), "other")
	l, err := ledger.Open(other, ledger.Options{Signer: key.Signer, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	var es []ledger.Entry
	for i := range 20 {
		es = append(es, ledger.Entry{Data: fmt.Appendf(nil, "other %d", i)})
	}
	if _, err := l.AppendEntries(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	l.Close()
	_, err = openNode(t, other, srv.URL, key)
	if !errors.Is(err, ledger.ErrKeyGuard) || !strings.Contains(err.Error(), "another history") {
		t.Fatalf("opening another store under the same key: %v", err)
	}
}

// TestMirrorForkHalts: an object in the bucket that differs from what the
// log would write is fork evidence: the log halts (appends fail, nothing
// more is released) and OnFatal is called.
func TestMirrorForkHalts(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	key := tlogtest.NewKey(t, "example.com/mirror")
	b, err := newBucket(context.Background(), Location{Bucket: s3test.Bucket, Endpoint: srv.URL, Region: "us-east-1", PathStyle: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.put(context.Background(), "tile/entries/000.p/5", []byte("not these entries"), typeTile, cacheImmutable, true, ""); err != nil {
		t.Fatal(err)
	}
	fatal := make(chan error, 1)
	m, err := New(context.Background(), Config{Bucket: s3test.BucketURL(srv.URL), Verifier: key.Verifier, Retry: 50 * time.Millisecond,
		OnFatal: func(err error) { fatal <- err }})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: key.Signer, Hooks: []ledger.PublishHook{m}, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 0, 5)
	select {
	case err := <-fatal:
		if !errors.Is(err, ErrFork) || !strings.Contains(err.Error(), "tile/entries/000.p/5") {
			t.Fatalf("OnFatal(%v)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no fork detected")
	}
	if _, err := l.Append(context.Background(), []byte("more")); !errors.Is(err, ledger.ErrHalted) {
		t.Fatalf("append after fork evidence: %v", err)
	}
	if cp, _ := l.Checkpoint(); cp.N != 0 {
		t.Fatalf("released size %d after fork evidence", cp.N)
	}
	if code, _, _ := bucketGet(t, srv.URL, "checkpoints/5"); code != 404 {
		t.Fatalf("checkpoints/5: %d", code)
	}
}

func TestParseLocation(t *testing.T) {
	loc, err := ParseLocation("s3://logs?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true")
	if err != nil || loc != (Location{Bucket: "logs", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", PathStyle: true}) {
		t.Fatalf("%+v, %v", loc, err)
	}
	if loc, err := ParseLocation("s3://logs"); err != nil || loc != (Location{Bucket: "logs"}) {
		t.Fatalf("%+v, %v", loc, err)
	}
	for _, bad := range []string{"", "logs", "http://logs", "s3://", "s3://logs/prefix", "s3://logs?endpoint=ftp://x",
		"s3://logs?path_style=maybe", "s3://logs?bogus=1", "s3://logs?region=a&region=b", "s3://u@logs"} {
		if _, err := ParseLocation(bad); err == nil {
			t.Errorf("ParseLocation(%q) accepted", bad)
		}
	}
}

func FuzzParseLocation(f *testing.F) {
	f.Add("s3://logs?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true")
	f.Add("s3://logs")
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s)
		if err != nil {
			return
		}
		if loc.Bucket == "" {
			t.Fatalf("%q: empty bucket accepted", s)
		}
		if loc.Endpoint != "" {
			if _, err := url.Parse(loc.Endpoint); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// bucketWitness cosigns every checkpoint, and records any it was sent
// before its checkpoints/<size> object existed in the bucket with exactly
// those bytes (the release rule).
type bucketWitness struct {
	t        *testing.T
	cosigner *itlog.Cosigner
	logV     note.Verifier
	server   string
	mu       sync.Mutex
	sizes    []int64
	early    []string
}

func (w *bucketWitness) Verifier() note.Verifier { return w.cosigner.Verifier() }

func (w *bucketWitness) AddCheckpoint(ctx context.Context, old int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error) {
	cp, _, err := itlog.OpenCheckpoint(checkpoint, w.logV)
	if err != nil {
		return nil, err
	}
	resp, err := http.Get(w.server + "/" + s3test.Bucket + "/checkpoints/" + fmt.Sprint(cp.N))
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	w.mu.Lock()
	w.sizes = append(w.sizes, cp.N)
	if resp.StatusCode != 200 || !bytes.Equal(b, checkpoint) {
		w.early = append(w.early, fmt.Sprintf("size %d: bucket %d %q", cp.N, resp.StatusCode, b))
	}
	w.mu.Unlock()
	signed, err := note.Sign(&note.Note{Text: cp.String()}, w.cosigner)
	if err != nil {
		return nil, err
	}
	return signed[len(cp.String())+1:], nil
}

// TestMirrorWitnessing: witnesses get only checkpoints already in the
// bucket, and the bucket's checkpoint is the witnessed one, cosignature
// included.
func TestMirrorWitnessing(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	key := tlogtest.NewKey(t, "example.com/mirror")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	c, err := itlog.NewCosigner("example.com/witness", priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &bucketWitness{t: t, cosigner: c, logV: key.Verifier, server: srv.URL}
	m, err := New(context.Background(), Config{Bucket: s3test.BucketURL(srv.URL), Verifier: key.Verifier, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(t.TempDir(), ledger.Options{Signer: key.Signer, Hooks: []ledger.PublishHook{m}, MinFreeBytes: -1,
		Witnessing: ledger.WitnessConfig{Witnesses: []ledger.Witness{w}, Retry: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 20 {
		appendN(t, l, i*7, 7)
	}
	waitMirrored(t, l, 140)
	_, body := l.Checkpoint()
	if n, err := note.Open(body, note.VerifierList(key.Verifier, c.Verifier())); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("served checkpoint: %v", err)
	}
	tlogtest.Eventually(t, 10*time.Second, "the bucket's checkpoint carries the cosignature", func() (bool, string) {
		// The test server (gofakes3 over files) does not replace an object
		// atomically: a read racing the mirror's replacement of checkpoint
		// can end early. Read again rather than fail.
		code, got, _, err := bucketTryGet(srv.URL, "checkpoint")
		if err != nil {
			return false, err.Error()
		}
		return code == 200 && bytes.Equal(got, body), fmt.Sprintf("%d %q", code, got)
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.early) > 0 || len(w.sizes) == 0 {
		t.Fatalf("witness got %d checkpoints, %d before the bucket had them: %v", len(w.sizes), len(w.early), w.early)
	}
}
