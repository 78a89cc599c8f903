package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api"
	tclient "github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/s3test"
	"indelible.dev/internal/tlogtest"
)

// tesseraFsck runs tessera's fsck (github.com/transparency-dev/tessera/fsck)
// over the tlog-tiles log served at logURL: it verifies the checkpoint,
// rebuilds every tile from the entry bundles and compares each with the
// served one, and the root with the checkpoint's.
func tesseraFsck(ctx context.Context, logURL, origin, vkey string) error {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	u, err := url.Parse(logURL + "/")
	if err != nil {
		return err
	}
	f, err := tclient.NewHTTPFetcher(u, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	leafHashes := func(b []byte) ([][]byte, error) {
		var eb api.EntryBundle
		if err := eb.UnmarshalText(b); err != nil {
			return nil, err
		}
		hs := make([][]byte, len(eb.Entries))
		for i, e := range eb.Entries {
			h := tlog.RecordHash(e)
			hs[i] = h[:]
		}
		return hs, nil
	}
	return fsck.New(origin, v, f, leafHashes, fsck.Opts{N: 4}).Check(ctx)
}

// TestTesseraFsckCorruptTile: tessera's fsck passes on a node's bucket, and
// fails once one byte of a hash tile in the bucket is flipped (so its pass
// in TestClusterBucket means something).
func TestTesseraFsckCorruptTile(t *testing.T) {
	s3test.SetEnv(t)
	srv := s3test.Start(t, s3test.Options{})
	bucketHTTP := srv.URL + "/" + s3test.Bucket
	p := startServe(t, filepath.Join(t.TempDir(), "data"), "--bucket", s3test.BucketURL(srv.URL))
	const n = 20
	for i := range n - 1 {
		httpAdd(t, p.url, fmt.Appendf(nil, "fsck entry %d", i))
	}
	if code, err := addWait(p.url, []byte("last"), 30*time.Second); err != nil || code != 200 {
		t.Fatalf("POST /add?wait=checkpoint: %d %v", code, err)
	}
	tlogtest.Eventually(t, 20*time.Second, "the bucket's checkpoint at the served size", func() (bool, string) {
		bn, _ := checkpointAt(t, bucketHTTP+"/checkpoint", p.vkey)
		return bn == n, fmt.Sprintf("bucket at %d, want %d", bn, n)
	})
	ctx := t.Context()
	if err := tesseraFsck(ctx, bucketHTTP, p.origin, p.vkey); err != nil {
		t.Fatalf("fsck of the bucket: %v", err)
	}
	tile := fmt.Sprintf("%s/tile/0/000.p/%d", bucketHTTP, n)
	code, b := httpGet(t, tile)
	if code != 200 || len(b) != n*32 {
		t.Fatalf("GET %s: %d, %d bytes", tile, code, len(b))
	}
	bad := bytes.Clone(b)
	bad[5*32+7] ^= 1
	req, err := http.NewRequest(http.MethodPut, tile, bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, got := httpGet(t, tile); code != 200 || !bytes.Equal(got, bad) {
		t.Fatalf("the tile was not replaced: PUT %s, GET %d", resp.Status, code)
	}
	err = tesseraFsck(ctx, bucketHTTP, p.origin, p.vkey)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("tile/0/000.p/%d", n)) {
		t.Fatalf("fsck of the bucket with a corrupted tile: %v, want a failure naming the tile", err)
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	t.Logf("fsck of the corrupted bucket: %s", msg)
}
