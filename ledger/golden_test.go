package ledger

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// The golden store: a small log written with the pinned pebble format by
// TestGoldenStore itself, run with -update-golden (the checked-in generator;
// never edit the files by hand). It proves that a store written by the
// pinned format opens and reads back, whatever pebble release go.mod holds.
//
//	go test ./ledger -run TestGoldenStore -update-golden
var updateGolden = flag.Bool("update-golden", false, "rewrite ledger/testdata/golden-store")

const (
	goldenDir     = "testdata/golden-store"
	goldenEntries = 300 // across a full bundle and tile, with a partial one
)

// goldenSigner is a fixed key: the seed is all zeros (test data only).
func goldenSigner(t *testing.T) note.Signer {
	skey, _, err := note.GenerateKey(bytes.NewReader(make([]byte, 64)), "golden.example/log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goldenEntry(i int) []byte { return fmt.Appendf(nil, "golden entry %d", i) }

func TestGoldenStore(t *testing.T) {
	pebbleOnly(t, "pebble on-disk format golden files")
	s := goldenSigner(t)
	if *updateGolden {
		os.RemoveAll(goldenDir)
		l, err := Open(goldenDir, Options{Signer: s, MinFreeBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < goldenEntries; i += 100 {
			var batch []Entry
			for j := i; j < i+100; j++ {
				batch = append(batch, Entry{Data: goldenEntry(j)})
			}
			if _, err := l.AppendEntries(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
		_, signed := l.Checkpoint()
		if err := l.pdb.Flush(); err != nil { // sstables, not only a WAL
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		text := signed[:bytes.Index(signed, []byte("\n\n"))+1]
		if err := os.WriteFile(goldenDir+".checkpoint", text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenDir + ".checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	// Pebble writes on open: work on a copy.
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.CopyFS(dir, os.DirFS(goldenDir)); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, Options{Signer: s, MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("opening the golden store: %v", err)
	}
	defer l.Close()
	if got := l.pdb.FormatMajorVersion(); got != pebbleFormat {
		t.Errorf("store format %d after open, want the pinned %d", got, pebbleFormat)
	}
	_, signed := l.Checkpoint()
	if !bytes.HasPrefix(signed, want) {
		t.Fatalf("golden store checkpoint:\n%s\nwant:\n%s", signed, want)
	}
	for _, i := range []int64{0, 255, 256, goldenEntries - 1} {
		e, err := l.Entry(i)
		if err != nil || !bytes.Equal(e, goldenEntry(int(i))) {
			t.Errorf("entry %d: %q, %v", i, e, err)
		}
	}
	if _, err := l.InclusionProof(7, goldenEntries); err != nil {
		t.Error(err)
	}
}

// TestNoFormatNewest: the store is never opened with pebble.FormatNewest,
// which would ratchet it with every dependency bump.
func TestNoFormatNewest(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("pebble."+"FormatNewest")) {
			t.Errorf("%s opens pebble with FormatNewest: use pebbleFormat", f)
		}
	}
}
