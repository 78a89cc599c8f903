package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/audit"
	"indelible.dev/audit/audittest"
	"indelible.dev/client"
)

func options(t testing.TB, l *audittest.Log, url string) audit.Options {
	t.Helper()
	c, err := client.New(url, "", client.WithOptions(client.Options{Retries: -1}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(l.VKey)
	if err != nil {
		t.Fatal(err)
	}
	opts := audit.Options{Client: c, Log: v, Parallel: 4}
	for _, k := range l.WitnessVKeys {
		wv, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			t.Fatal(err)
		}
		opts.Witnesses = append(opts.Witnesses, wv)
	}
	return opts
}

// TestFullReplaySizes audits x/mod-written logs of sizes around every tile
// boundary: the audit passes and reports the root x/mod computes.
func TestFullReplaySizes(t *testing.T) {
	l := audittest.NewLog(t, "example.com/xmod", 2)
	url := l.Serve(t)
	ctx := context.Background()
	for _, n := range []int64{0, 1, 2, 3, 7, 255, 256, 257, 511, 512, 513, 1000, 65535, 65536, 65537, 70000} {
		l.Grow(t, n)
		res, err := audit.Audit(ctx, options(t, l, url), nil)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if res.Size != n || res.Root != l.Root(t, n) || res.Entries != n || res.From != 0 {
			t.Fatalf("size %d: result %+v", n, res)
		}
		if len(res.Cosigners) != 2 {
			t.Fatalf("size %d: cosigners %v", n, res.Cosigners)
		}
		wantBundles := (n + 255) / 256
		if res.Bundles != wantBundles {
			t.Fatalf("size %d: %d bundles, want %d", n, res.Bundles, wantBundles)
		}
	}
}

// TestIncremental audits a growing log with a state: each run checks
// consistency with the last (a proof built from tiles: the file server has
// no proof endpoint) and replays only the new bundles.
func TestIncremental(t *testing.T) {
	l := audittest.NewLog(t, "example.com/xmod", 1)
	url := l.Serve(t)
	ctx := context.Background()
	statePath := filepath.Join(t.TempDir(), "state.json")
	var prevSize int64
	for i, n := range []int64{0, 5, 300, 300, 513, 1024, 66000, 66001, 70000} {
		l.Grow(t, n)
		prev, err := audit.LoadState(statePath)
		if err != nil {
			t.Fatal(err)
		}
		if (prev == nil) != (i == 0) {
			t.Fatalf("run %d: state %v", i, prev)
		}
		res, err := audit.Audit(ctx, options(t, l, url), prev)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if res.From != prevSize || res.Size != n || res.Root != l.Root(t, n) {
			t.Fatalf("size %d: result %+v", n, res)
		}
		if want := n - prevSize/256*256; n > prevSize && res.Entries != want {
			t.Fatalf("size %d from %d: replayed %d entries, want %d", n, prevSize, res.Entries, want)
		}
		if prevSize > 0 && n > prevSize && res.ProofSource != "tiles" {
			t.Fatalf("size %d: proof source %q", n, res.ProofSource)
		}
		if err := audit.SaveState(statePath, audit.NewState(res)); err != nil {
			t.Fatal(err)
		}
		prevSize = n
	}
}

// TestTamper alters what the log serves, one way per case, and checks the
// audit fails naming the problem; the untouched log passes.
func TestTamper(t *testing.T) {
	l := audittest.NewLog(t, "example.com/xmod", 2)
	l.Grow(t, 300)
	cp300 := l.Checkpoints[300]
	l.Grow(t, 66000) // 257 full level-0 tiles, a full level-1 tile, partials at every level
	proxy := audittest.NewProxy(t, l.Serve(t))
	ctx := context.Background()

	prevAt := func(n int64) *audit.State {
		return &audit.State{Origin: l.Origin, Size: n, Root: l.Root(t, n), Checkpoint: string(l.Checkpoints[n])}
	}
	fork := l.Sign(t, 66000, tlog.Hash{1, 2, 3})
	// A checkpoint whose first witness cosignature is by the right key over
	// other text: replace its signature bytes with those of another note.
	badCosig := func() []byte {
		other := l.Sign(t, 66000, tlog.Hash{9})
		good := l.Checkpoints[66000]
		gl, ol := strings.Split(string(good), "\n"), strings.Split(string(other), "\n")
		for i := range gl {
			if strings.HasPrefix(gl[i], "— witness0.example ") {
				gl[i] = ol[i]
			}
		}
		return []byte(strings.Join(gl, "\n"))
	}()
	noCosig := func() []byte {
		var out []string
		for _, line := range strings.Split(string(l.Checkpoints[66000]), "\n") {
			if !strings.HasPrefix(line, "— witness1.example ") {
				out = append(out, line)
			}
		}
		return []byte(strings.Join(out, "\n"))
	}()
	badLogSig := func() []byte {
		b := bytes.Clone(l.Checkpoints[66000])
		i := bytes.Index(b, []byte("— example.com/xmod ")) + len("— example.com/xmod ") + 10
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return b
	}()

	for _, tc := range []struct {
		name     string
		m        audittest.Mutator
		prev     *audit.State
		quorum   int
		kind     string
		resource string
	}{
		{name: "untouched"},
		{name: "untouched incremental", prev: prevAt(300)},
		{name: "hash tile byte", m: audittest.FlipByte("tile/0/007", 100), kind: audit.KindTile, resource: "tile/0/007"},
		{name: "level-1 tile byte", m: audittest.FlipByte("tile/1/000", 8000), kind: audit.KindTile, resource: "tile/1/000"},
		{name: "bundle entry byte", m: audittest.FlipByte("tile/entries/003", 50), kind: audit.KindTile, resource: "tile/0/003"},
		{name: "bundle length prefix", m: audittest.FlipByte("tile/entries/004", 0), kind: audit.KindBundle, resource: "tile/entries/004"},
		{name: "partial level-0 tile", m: audittest.FlipByte("tile/0/257.p/208", -1), kind: audit.KindTile, resource: "tile/0/257.p/208"},
		{name: "partial level-1 tile", m: audittest.FlipByte("tile/1/001.p/1", 3), kind: audit.KindTile, resource: "tile/1/001.p/1"},
		{name: "partial level-2 tile", m: audittest.FlipByte("tile/2/000.p/1", 3), kind: audit.KindTile, resource: "tile/2/000.p/1"},
		{name: "partial bundle", m: audittest.FlipByte("tile/entries/257.p/208", -1), kind: audit.KindTile, resource: "tile/0/257.p/208"},
		{name: "truncated tile", m: truncate("tile/0/002"), kind: audit.KindTile, resource: "tile/0/002"},
		{name: "missing tile", m: audittest.NotFound("tile/0/100"), kind: audit.KindTile, resource: "tile/0/100"},
		{name: "missing bundle", m: audittest.NotFound("tile/entries/100"), kind: audit.KindBundle, resource: "tile/entries/100"},
		{name: "missing partial tile", m: audittest.NotFound("tile/1/001.p/1"), kind: audit.KindTile, resource: "tile/1/001.p/1"},
		{name: "fork full replay", m: audittest.Replace("checkpoint", fork), kind: audit.KindRoot, resource: "checkpoint"},
		{name: "fork same size", m: audittest.Replace("checkpoint", fork), prev: prevAt(66000), kind: audit.KindFork, resource: "checkpoint"},
		{name: "fork incremental", m: audittest.Replace("checkpoint", fork), prev: prevAt(300), kind: audit.KindConsistency, resource: "consistency proof 300->66000"},
		{name: "history rewritten", prev: &audit.State{Origin: l.Origin, Size: 300, Root: tlog.Hash{7}}, kind: audit.KindConsistency, resource: "consistency proof"},
		{name: "backwards", m: audittest.Replace("checkpoint", cp300), prev: prevAt(66000), kind: audit.KindBackwards, resource: "checkpoint"},
		{name: "bad witness cosignature", m: audittest.Replace("checkpoint", badCosig), kind: audit.KindWitness, resource: "checkpoint"},
		{name: "missing cosignature", m: audittest.Replace("checkpoint", noCosig), kind: audit.KindWitness, resource: "checkpoint"},
		{name: "missing cosignature quorum 1", m: audittest.Replace("checkpoint", noCosig), quorum: 1},
		{name: "bad log signature", m: audittest.Replace("checkpoint", badLogSig), kind: audit.KindCheckpoint, resource: "checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Set(tc.m)
			defer proxy.Set(nil)
			opts := options(t, l, proxy.URL)
			opts.Quorum = tc.quorum
			res, err := audit.Audit(ctx, opts, tc.prev)
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("untouched log failed: %v", err)
				}
				if res.Size != 66000 || res.Root != l.Root(t, 66000) {
					t.Fatalf("result %+v", res)
				}
				return
			}
			var f *audit.Failure
			if !errors.As(err, &f) {
				t.Fatalf("got %v (res %+v), want a failure of kind %s", err, res, tc.kind)
			}
			if f.Kind != tc.kind || !strings.Contains(f.Resource, tc.resource) {
				t.Fatalf("got failure %q kind %s resource %q, want kind %s resource %q", f, f.Kind, f.Resource, tc.kind, tc.resource)
			}
			if len(f.Checkpoint) == 0 {
				t.Fatalf("failure carries no checkpoint")
			}
			t.Logf("%v", f)
		})
	}
}

func truncate(path string) audittest.Mutator {
	return func(p string, status int, b []byte) (int, []byte) {
		if p == path {
			return status, b[:len(b)-32]
		}
		return status, b
	}
}

// TestCheckEntry checks that the per-entry hook sees every entry once and
// that its error is a Failure naming the entry.
func TestCheckEntry(t *testing.T) {
	l := audittest.NewLog(t, "example.com/xmod", 0)
	l.Grow(t, 600)
	url := l.Serve(t)
	opts := options(t, l, url)
	seen := make([]int32, 600)
	opts.CheckEntry = func(i int64, e []byte) error {
		if !bytes.Equal(e, audittest.Entry(i)) {
			return fmt.Errorf("entry %d is %q", i, e)
		}
		seen[i]++ // distinct i per call: no race
		return nil
	}
	if _, err := audit.Audit(context.Background(), opts, nil); err != nil {
		t.Fatal(err)
	}
	for i, s := range seen {
		if s != 1 {
			t.Fatalf("entry %d seen %d times", i, s)
		}
	}
	opts.CheckEntry = func(i int64, e []byte) error {
		if i == 333 {
			return errors.New("commitment mismatch")
		}
		return nil
	}
	_, err := audit.Audit(context.Background(), opts, nil)
	var f *audit.Failure
	if !errors.As(err, &f) || f.Kind != audit.KindEntry || f.Resource != "entry 333" {
		t.Fatalf("got %v", err)
	}
}

// TestStateRoundTrip checks the state file keeps what a run verified and
// rejects a hand-edited size.
func TestStateRoundTrip(t *testing.T) {
	l := audittest.NewLog(t, "example.com/xmod", 0)
	l.Grow(t, 10)
	res, err := audit.Audit(context.Background(), options(t, l, l.Serve(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "s.json")
	if s, err := audit.LoadState(p); s != nil || err != nil {
		t.Fatalf("missing state: %v %v", s, err)
	}
	if err := audit.SaveState(p, audit.NewState(res)); err != nil {
		t.Fatal(err)
	}
	s, err := audit.LoadState(p)
	if err != nil || s.Size != 10 || s.Root != l.Root(t, 10) || s.Origin != l.Origin {
		t.Fatalf("loaded %+v %v", s, err)
	}
	s.Size = 11
	if err := audit.SaveState(p, s); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.LoadState(p); err == nil {
		t.Fatal("edited state accepted")
	}
}
