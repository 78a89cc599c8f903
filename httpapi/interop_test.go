package httpapi

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	"indelible.dev/internal/tlogtest"
	"indelible.dev/ledger"
)

// TestInteropClients appends through HTTP in rounds that cross the 256 tile
// boundary, and at each checkpoint checks the log with two independent
// clients: tessera's (FetchCheckpoint, ProofBuilder, GetEntryBundle, with its
// HTTP fetcher) and x/mod's tlog (TileHashReader over HTTP, which
// authenticates every tile against the checkpoint's root). Every entry's
// inclusion proof and the consistency between every pair of checkpoints
// verify, and /v1/proof answers equal the proofs built from tiles.
func TestInteropClients(t *testing.T) {
	tl := newTestLog(t, ledger.Options{})
	ctx := ctxT(t)
	u, _ := url.Parse(tl.url + "/")
	fetcher, err := tclient.NewHTTPFetcher(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		n    int64
		root tlog.Hash
	}
	var cps []seen
	for _, target := range []int{1, 2, 255, 256, 257, 300, 513} {
		tl.addN(target - len(tl.entries))
		n := int64(target)

		// tessera: fetch and verify the checkpoint.
		tcp, _, _, err := tclient.FetchCheckpoint(ctx, fetcher.ReadCheckpoint, tl.verifier, testOrigin)
		if err != nil {
			t.Fatalf("tessera FetchCheckpoint: %v", err)
		}
		if int64(tcp.Size) != n {
			t.Fatalf("checkpoint size %d, want %d", tcp.Size, n)
		}
		var root tlog.Hash
		copy(root[:], tcp.Hash)
		cps = append(cps, seen{n, root})

		// x/mod: a hash reader over HTTP tiles, authenticated by the root.
		hr := tlog.TileHashReader(tlog.Tree{N: n, Hash: root}, tlogtest.TileReader{URL: tl.url})
		if th, err := tlog.TreeHash(n, hr); err != nil || th != root {
			t.Fatalf("size %d: x/mod TreeHash from tiles = %v, %v; want %v", n, th, err, root)
		}

		pb, err := tclient.NewProofBuilder(ctx, uint64(n), fetcher.ReadTile)
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < n; i++ {
			leaf := rfc6962.DefaultHasher.HashLeaf(tl.entries[i])
			// tessera's proof from tiles.
			tp, err := pb.InclusionProof(ctx, uint64(i))
			if err != nil {
				t.Fatalf("tessera InclusionProof(%d, %d): %v", i, n, err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(n), leaf, tp, root[:]); err != nil {
				t.Fatalf("tessera proof of %d in %d does not verify: %v", i, n, err)
			}
			// x/mod's proof from tiles.
			xp, err := tlog.ProveRecord(n, i, hr)
			if err != nil {
				t.Fatalf("x/mod ProveRecord(%d, %d): %v", i, n, err)
			}
			if err := tlog.CheckRecord(xp, n, root, i, tlog.RecordHash(tl.entries[i])); err != nil {
				t.Fatalf("x/mod proof of %d in %d does not verify: %v", i, n, err)
			}
			// The server's proof equals both.
			var sp client.InclusionProof
			tl.proofJSON(fmt.Sprintf("/v1/proof/inclusion?index=%d&size=%d", i, n), &sp)
			if sp.Index != i || sp.TreeSize != n {
				t.Fatalf("inclusion reply index %d size %d, want %d %d", sp.Index, sp.TreeSize, i, n)
			}
			got := decodeHashes(t, sp.Hashes)
			if !slices.Equal(got, xp) || !equalBytes(got, tp) {
				t.Fatalf("/v1/proof/inclusion %d in %d differs from the proofs built from tiles", i, n)
			}
		}
		// By hash, for a few entries.
		for _, i := range []int64{0, n / 2, n - 1} {
			var sp client.InclusionProof
			h := tlog.RecordHash(tl.entries[i])
			tl.proofJSON("/v1/proof/inclusion?size="+fmt.Sprint(n)+"&hash="+url.QueryEscape(h.String()), &sp)
			if sp.Index != i {
				t.Fatalf("inclusion by hash of entry %d: index %d", i, sp.Index)
			}
			if err := tlog.CheckRecord(decodeHashes(t, sp.Hashes), n, root, i, h); err != nil {
				t.Fatalf("inclusion by hash of %d in %d: %v", i, n, err)
			}
		}
		// Every bundle, through tessera's GetEntryBundle (partial included).
		for b := int64(0); b*256 < n; b++ {
			bundle, err := tclient.GetEntryBundle(ctx, fetcher.ReadEntryBundle, uint64(b), uint64(n))
			if err != nil {
				t.Fatalf("tessera GetEntryBundle(%d, %d): %v", b, n, err)
			}
			want := tl.entries[b*256 : min(n, (b+1)*256)]
			if len(bundle.Entries) != len(want) {
				t.Fatalf("bundle %d at size %d: %d entries, want %d", b, n, len(bundle.Entries), len(want))
			}
			for k := range want {
				if !bytes.Equal(bundle.Entries[k], want[k]) {
					t.Fatalf("bundle %d entry %d = %q, want %q", b, k, bundle.Entries[k], want[k])
				}
			}
		}
	}

	// Consistency between every pair of checkpoints seen, from tiles (both
	// clients) and from the server, all equal and all verifying.
	last := cps[len(cps)-1]
	hr := tlog.TileHashReader(tlog.Tree{N: last.n, Hash: last.root}, tlogtest.TileReader{URL: tl.url})
	for j, hi := range cps {
		pb, err := tclient.NewProofBuilder(ctx, uint64(hi.n), fetcher.ReadTile)
		if err != nil {
			t.Fatal(err)
		}
		for _, lo := range cps[:j+1] {
			tp, err := pb.ConsistencyProof(ctx, uint64(lo.n), uint64(hi.n))
			if err != nil {
				t.Fatalf("tessera ConsistencyProof(%d, %d): %v", lo.n, hi.n, err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(lo.n), uint64(hi.n), tp, lo.root[:], hi.root[:]); err != nil {
				t.Fatalf("tessera consistency %d -> %d: %v", lo.n, hi.n, err)
			}
			var sp client.ConsistencyProof
			tl.proofJSON(fmt.Sprintf("/v1/proof/consistency?from=%d&to=%d", lo.n, hi.n), &sp)
			if sp.From != lo.n || sp.To != hi.n {
				t.Fatalf("consistency reply from %d to %d, want %d %d", sp.From, sp.To, lo.n, hi.n)
			}
			got := decodeHashes(t, sp.Hashes)
			if !equalBytes(got, tp) {
				t.Fatalf("/v1/proof/consistency %d -> %d differs from tessera's proof built from tiles", lo.n, hi.n)
			}
			if lo.n == hi.n {
				continue
			}
			xp, err := tlog.ProveTree(hi.n, lo.n, hr)
			if err != nil {
				t.Fatalf("x/mod ProveTree(%d, %d): %v", hi.n, lo.n, err)
			}
			if !slices.Equal(got, xp) {
				t.Fatalf("/v1/proof/consistency %d -> %d differs from x/mod's proof built from tiles", lo.n, hi.n)
			}
			if err := tlog.CheckTree(got, hi.n, hi.root, lo.n, lo.root); err != nil {
				t.Fatalf("x/mod CheckTree %d -> %d: %v", lo.n, hi.n, err)
			}
		}
	}
}

func equalBytes(a []tlog.Hash, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i][:], b[i]) {
			return false
		}
	}
	return true
}
