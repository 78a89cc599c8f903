package audit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/audit"
	"indelible.dev/audit/audittest"
	"indelible.dev/client"
	"indelible.dev/internal/tlogtest"
)

// tesseraGrow appends entries [from, to) to the tessera POSIX log in dir
// (creating it if needed) and waits until they are published.
func tesseraGrow(t *testing.T, dir string, s note.Signer, from, to int) {
	t.Helper()
	ctx := context.Background()
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(s).
		WithBatching(uint(to-from), 50*time.Millisecond).
		WithCheckpointInterval(100 * time.Millisecond)
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		t.Fatal(err)
	}
	await := tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 20*time.Millisecond)
	var futures []tessera.IndexFuture
	for i := from; i < to; i++ {
		futures = append(futures, appender.Add(ctx, tessera.NewEntry([]byte(fmt.Sprintf("tessera entry %d", i)))))
	}
	for i, f := range futures {
		idx, _, err := await.Await(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if idx.Index != uint64(from+i) {
			t.Fatalf("entry %d got index %d", from+i, idx.Index)
		}
	}
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestTesseraPOSIXLog audits a log written by another implementation,
// tessera v1.0.4's POSIX storage, served by a plain file server: the full
// and the incremental audits pass (the consistency proof is built from the
// tiles), and a flipped byte in one of its tiles is caught.
func TestTesseraPOSIXLog(t *testing.T) {
	dir := t.TempDir()
	k := tlogtest.NewKey(t, "example.com/tessera")
	s, v := k.Signer, k.Verifier
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	proxy := audittest.NewProxy(t, srv.URL)
	c, err := client.New(proxy.URL, "", client.WithOptions(client.Options{Retries: -1}))
	if err != nil {
		t.Fatal(err)
	}
	opts := audit.Options{Client: c, Log: v, Parallel: 4}
	ctx := context.Background()

	tesseraGrow(t, dir, s, 0, 700)
	res, err := audit.Audit(ctx, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 700 || res.Entries != 700 {
		t.Fatalf("result %+v", res)
	}

	tesseraGrow(t, dir, s, 700, 1100)
	res, err = audit.Audit(ctx, opts, audit.NewState(res))
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 1100 || res.From != 700 || res.ProofSource != "tiles" || res.Entries != 1100-512 {
		t.Fatalf("incremental result %+v", res)
	}

	proxy.Set(audittest.FlipByte("tile/0/001", 77))
	_, err = audit.Audit(ctx, opts, nil)
	var f *audit.Failure
	if !errors.As(err, &f) || f.Resource != "tile/0/001" {
		t.Fatalf("tampered tessera tile: %v", err)
	}
}
