package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/s3test"
	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// checkpointAt fetches a checkpoint note from url and returns its size.
func checkpointAt(t testing.TB, url, vkey string) (int64, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		// The test S3 server does not replace an object atomically: a
		// read racing the checkpoint's replacement can end early. Callers
		// poll, so report "not there yet".
		return -1, b
	}
	if resp.StatusCode != 200 {
		return -1, b
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := itlog.OpenNote(b, note.VerifierList(v))
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	cp, err := itlog.ParseCheckpoint(n.Text)
	if err != nil {
		t.Fatal(err)
	}
	return cp.N, b
}

// addWait posts entry with ?wait=checkpoint, giving up after d.
func addWait(url string, entry []byte, d time.Duration) (int, error) {
	c := &http.Client{Timeout: d}
	resp, err := c.Post(url+"/add?wait=checkpoint", "application/octet-stream", bytes.NewReader(entry))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestServeBucket runs `indelible serve --bucket` (raw mode) against an S3
// server process: the bucket holds the server's checkpoint and tiles byte
// for byte and `indelible audit` passes against the bucket's URL; with the
// bucket cut off, appends are acknowledged but /checkpoint and
// wait=checkpoint stall, and catch up after healing; a copy of the data
// directory older than the bucket is refused with exit code 2.
func TestServeBucket(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	proxy := s3test.NewProxy(t, srv.Addr)
	bucketFlag := s3test.BucketURL(proxy.URL())
	bucketHTTP := srv.URL + "/" + s3test.Bucket
	dir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dir, "--bucket", bucketFlag)
	for i := range 300 {
		httpAdd(t, p.url, []byte("bucket entry "+strconv.Itoa(i)))
	}
	if code, err := addWait(p.url, []byte("waited"), 30*time.Second); err != nil || code != 200 {
		t.Fatalf("POST /add?wait=checkpoint: %d %v", code, err)
	}
	const n = 301
	var served []byte
	tlogtest.Eventually(t, 20*time.Second, "the bucket's checkpoint at the served size", func() (bool, string) {
		var sn, bn int64
		sn, served = checkpointAt(t, p.url+"/checkpoint", p.vkey)
		bn, bucket := checkpointAt(t, bucketHTTP+"/checkpoint", p.vkey)
		return sn == n && bytes.Equal(served, bucket), fmt.Sprintf("server %d, bucket %d", sn, bn)
	})
	if code, b := httpGet(t, bucketHTTP+"/checkpoints/"+strconv.Itoa(n)); code != 200 || !bytes.Equal(b, served) {
		t.Fatalf("checkpoints/%d: %d %q, want %q", n, code, b, served)
	}
	for _, tl := range tlog.NewTiles(itlog.TileHeight, 0, n) {
		paths := []string{itlog.TilePath(tl)}
		if tl.L == 0 {
			e := tl
			e.L = itlog.EntriesLevel
			paths = append(paths, itlog.TilePath(e))
		}
		for _, path := range paths {
			sc, sb := httpGet(t, p.url+"/"+path)
			bc, bb := httpGet(t, bucketHTTP+"/"+path)
			if sc != 200 || bc != 200 || !bytes.Equal(sb, bb) {
				t.Fatalf("%s: server %d (%d bytes), bucket %d (%d bytes)", path, sc, len(sb), bc, len(bb))
			}
		}
	}
	if out, errOut, code := run(t, nil, "audit", "--url", bucketHTTP, "--key", p.vkey, "--no-progress"); code != 0 ||
		!strings.Contains(out, "size "+strconv.Itoa(n)) {
		t.Fatalf("indelible audit of the bucket: exit %d\n%s\n%s", code, out, errOut)
	}
	code, metrics := httpGet(t, p.url+"/metrics")
	if code != 200 || !strings.Contains(string(metrics), "indelible_mirror_lag_entries 0") || !strings.Contains(string(metrics), "indelible_mirror_size 301") {
		t.Fatalf("/metrics lacks the mirror's lag:\n%s", metrics)
	}

	// A copy of the data directory (key, mark and store) at size 301.
	p.stop(t)
	backup := filepath.Join(t.TempDir(), "backup")
	if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	p = startServe(t, dir, "--bucket", bucketFlag)

	// The bucket is cut off: appends are acknowledged, signatures stall.
	proxy.Cut()
	for i := range 5 {
		httpAdd(t, p.url, []byte("while cut "+strconv.Itoa(i)))
	}
	if code, err := addWait(p.url, []byte("waits"), 2*time.Second); err == nil {
		t.Fatalf("POST /add?wait=checkpoint answered %d with the bucket cut off", code)
	}
	if sn, _ := checkpointAt(t, p.url+"/checkpoint", p.vkey); sn != n {
		t.Fatalf("/checkpoint at size %d with the bucket cut off, want %d", sn, n)
	}
	_, metrics = httpGet(t, p.url+"/metrics")
	if strings.Contains(string(metrics), "indelible_mirror_lag_entries 0\n") {
		t.Fatalf("no lag with the bucket cut off:\n%s", metrics)
	}
	proxy.Heal()
	tlogtest.Eventually(t, 30*time.Second, "/checkpoint catches up after healing", func() (bool, string) {
		sn, _ := checkpointAt(t, p.url+"/checkpoint", p.vkey)
		return sn == n+6, fmt.Sprint(sn)
	})
	if code, err := addWait(p.url, []byte("after healing"), 30*time.Second); err != nil || code != 200 {
		t.Fatalf("POST /add?wait=checkpoint after healing: %d %v", code, err)
	}
	p.stop(t)

	// The old copy: its own mark agrees with it, but the bucket is ahead.
	_, errOut, code := run(t, nil, "serve", "--data", backup, "--mode", "raw", "--listen", "127.0.0.1:0", "--bucket", bucketFlag)
	if code != 2 || !strings.Contains(errOut, "ahead of the store's 301 entries") || !strings.Contains(errOut, "refusing to sign") {
		t.Fatalf("serve on an older copy of the data: exit %d\n%s", code, errOut)
	}
}

// TestServeBucketEvents: events mode with a bucket: receipts come once the
// bucket has the checkpoint, and stall while it is cut off.
func TestServeBucketEvents(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	proxy := s3test.NewProxy(t, srv.Addr)
	p := startEvents(t, filepath.Join(t.TempDir(), "data"), "--bucket", s3test.BucketURL(proxy.URL()))
	c := p.client(t)
	ctx := context.Background()
	const marker = "bucket-secret-7f3a9c"
	res, err := c.AppendNDJSON(ctx, []byte(`{"action":"bucket.one","actor":{"id":"`+marker+`"}}`+"\n"), true)
	if err != nil || len(res) != 1 {
		t.Fatalf("append with wait: %v %v", res, err)
	}
	// The bucket holds commitments only: no event content reaches it.
	if hits := tlogtest.FilesContaining(t, srv.Dir, []byte(marker)); len(hits) > 0 {
		t.Fatalf("event content in the bucket's files: %v", hits)
	}
	rc, err := c.Receipt(ctx, res[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	// The receipt's checkpoint is in the bucket under its size.
	r, err := itlog.ParseReceipt(rc)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := itlog.SplitNote(r.Checkpoint)
	cp, err := itlog.ParseCheckpoint(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if code, b := httpGet(t, srv.URL+"/"+s3test.Bucket+"/checkpoints/"+strconv.FormatInt(cp.N, 10)); code != 200 || !bytes.Equal(r.Checkpoint, b) {
		t.Fatalf("checkpoints/%d: %d %q; the receipt's checkpoint: %q", cp.N, code, b, r.Checkpoint)
	}

	proxy.Cut()
	res, err = c.AppendNDJSON(ctx, []byte(`{"action":"bucket.two"}`+"\n"), false)
	if err != nil || len(res) != 1 {
		t.Fatalf("append without wait, bucket cut off: %v %v", res, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = c.AppendNDJSON(wctx, []byte(`{"action":"bucket.three"}`+"\n"), true)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append with wait, bucket cut off: %v", err)
	}
	proxy.Heal()
	wctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.AppendNDJSON(wctx, []byte(`{"action":"bucket.four"}`+"\n"), true); err != nil {
		t.Fatalf("append with wait after healing: %v", err)
	}
	if _, err := c.Receipt(ctx, res[0].Index); err != nil {
		t.Fatalf("receipt of the event appended while cut off: %v", err)
	}
}

// TestServeBucketIgnoringConditions: a store that ignores If-None-Match is
// refused at start.
func TestServeBucketIgnoringConditions(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{IgnoreConditions: true})
	dir := filepath.Join(t.TempDir(), "data")
	_, errOut, code := run(t, nil, "serve", "--data", dir, "--mode", "raw", "--listen", "127.0.0.1:0", "--bucket", s3test.BucketURL(srv.URL))
	if code != 2 || !strings.Contains(errOut, "ignores If-None-Match") {
		t.Fatalf("serve with a bucket ignoring conditions: exit %d\n%s", code, errOut)
	}
}

// TestServeBucketFork: an object in the bucket that differs from what the
// log writes at its name is fork evidence: serve stops by itself, exits
// non-zero and says which object differs.
func TestServeBucketFork(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/"+s3test.Bucket+"/tile/entries/000.p/1", strings.NewReader("another history"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("planting the object: %s", resp.Status)
	}
	p := startServe(t, filepath.Join(t.TempDir(), "data"), "--bucket", s3test.BucketURL(srv.URL))
	httpAdd(t, p.url, []byte("the first entry"))
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve still running after fork evidence\nstderr:\n%s", p.stderr)
	}
	if p.err == nil || !strings.Contains(p.stderr.String(), "fork evidence") || !strings.Contains(p.stderr.String(), "tile/entries/000.p/1") {
		t.Fatalf("serve exited with %v\nstderr:\n%s", p.err, p.stderr)
	}
	if code, _ := httpGet(t, srv.URL+"/"+s3test.Bucket+"/checkpoints/1"); code != 404 {
		t.Fatalf("checkpoints/1 created despite the fork: %d", code)
	}
}
