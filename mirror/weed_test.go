package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"indelible.dev/internal/s3test"
)

// TestMirrorWeed runs the mirror against SeaweedFS (weed server -s3), a
// real S3-compatible store: the start-up probe passes (weed honours
// If-None-Match: * and If-Match), the bucket holds the log as
// TestMirrorLayout checks it, and weed refuses with 412 a second create of
// checkpoints/<size> with other bytes and a replacement of checkpoint under
// a stale ETag. It needs INDELIBLE_TEST_WEED (the path of a weed binary)
// and skips without it, as in CI: weed takes about eight minutes to build.
func TestMirrorWeed(t *testing.T) {
	bin := s3test.WeedBinary(t)
	s3test.SetEnv(t)
	srv := s3test.StartWeed(t, bin)
	testMirrorConditions(t, srv)
}

// testMirrorConditions checks, on srv, the layout of a mirrored log and
// that the store refuses with 412 what the mirror relies on it refusing.
func testMirrorConditions(t *testing.T, srv *s3test.Server) {
	t.Helper()
	n, total := testMirrorLayout(t, srv)
	ctx := context.Background()
	b, err := newBucket(ctx, Location{Bucket: s3test.Bucket, Endpoint: srv.URL, Region: "us-east-1", PathStyle: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want412 := func(what string, err error) {
		t.Helper()
		var re interface{ HTTPStatusCode() int }
		if err == nil || !errors.Is(err, errPrecondition) || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusPreconditionFailed {
			t.Fatalf("%s: %v, want a 412", what, err)
		}
	}

	// checkpoints/<size> is create-only: another create with other bytes
	// is refused, and the object keeps the log's bytes.
	cpKey := fmt.Sprintf("checkpoints/%d", total)
	orig, _, err := b.get(ctx, cpKey, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.put(ctx, cpKey, []byte("another history\n"), typeCheckpoint, cacheImmutable, true, "")
	want412("a second create of "+cpKey, err)
	if code, got, _ := bucketGet(t, srv.URL, cpKey); code != 200 || !bytes.Equal(got, orig) {
		t.Fatalf("%s after a refused create: %d %q, want %q", cpKey, code, got, orig)
	}

	// checkpoint is replaced only under its current ETag.
	_, body := n.l.Checkpoint()
	cur, etag, err := b.get(ctx, "checkpoint", 1<<20)
	if err != nil || !bytes.Equal(cur, body) {
		t.Fatalf("bucket checkpoint: %q, %v; want %q", cur, err, body)
	}
	stale := `"00000000000000000000000000000000"`
	if etag == stale {
		stale = `"11111111111111111111111111111111"`
	}
	_, err = b.put(ctx, "checkpoint", []byte("older\n"), typeCheckpoint, cacheNoCache, false, stale)
	want412("replacing checkpoint under a stale ETag", err)
	if code, got, _ := bucketGet(t, srv.URL, "checkpoint"); code != 200 || !bytes.Equal(got, body) {
		t.Fatalf("checkpoint after a refused replacement: %d %q, want %q", code, got, body)
	}

	// The log goes on: one more checkpoint, mirrored.
	appendN(t, n.l, total, 3)
	waitMirrored(t, n.l, int64(total+3))
	if code, _, _ := bucketGet(t, srv.URL, fmt.Sprintf("checkpoints/%d", total+3)); code != 200 {
		t.Fatalf("checkpoints/%d: %d", total+3, code)
	}
	if err := n.l.Err(); err != nil {
		t.Fatal(err)
	}
}
