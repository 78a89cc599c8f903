package witness

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	itlog "indelible.dev/tlog"
)

// Gossip limits.
const (
	maxTileSize     = itlog.TileWidth * tlog.HashSize
	maxForksBody    = 8 << 20
	maxCheckpointIn = MaxBodySize
)

// Result values of Observe.
const (
	ObservedConsistent = "consistent" // proven consistent with our view
	ObservedFork       = "fork"       // proven inconsistent: evidence recorded
	ObservedNoView     = "no-view"    // we never cosigned this log: nothing to compare
	ObservedUnverified = "unverified" // sizes differ and no proof could be built (no log URL, or its tiles do not match)
)

// Observation is the outcome of comparing a checkpoint seen elsewhere with
// the witness's own view.
type Observation struct {
	Origin   string `json:"origin"`
	Size     int64  `json:"size"`
	OurSize  int64  `json:"our_size"`
	Result   string `json:"result"`
	Detail   string `json:"detail,omitempty"`
	Evidence uint64 `json:"evidence_id,omitempty"`
}

func (w *Witness) gossipLoop(ctx context.Context) {
	defer close(w.stopped)
	t := time.NewTicker(w.opts.GossipInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.GossipOnce(ctx)
		}
	}
}

// GossipOnce runs one gossip round: for each peer and each known log it
// fetches the peer's latest cosigned checkpoint, checks the log signature and
// the peer's cosignature, and compares it with our view (Observe). It also
// imports, after verifying it, any fork evidence the peer holds for a known
// log. Failures are logged and counted; GossipOnce never stops early.
func (w *Witness) GossipOnce(ctx context.Context) {
	for _, p := range w.opts.Peers {
		for _, ls := range w.logs {
			if ctx.Err() != nil {
				return
			}
			if err := w.gossipCheckpoint(ctx, p, ls); err != nil {
				w.stats.gossipErrors.Add(1)
				w.log.Warn("gossip: checkpoint from peer", "peer", p.Verifier.Name(), "origin", ls.Origin, "err", err)
			}
		}
		if err := w.gossipForks(ctx, p); err != nil {
			w.stats.gossipErrors.Add(1)
			w.log.Warn("gossip: fork evidence from peer", "peer", p.Verifier.Name(), "err", err)
		}
	}
	w.stats.gossipRounds.Add(1)
}

func (w *Witness) gossipCheckpoint(ctx context.Context, p Peer, ls *logState) error {
	pc, err := w.clientFor(p.URL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, gossipTimeout)
	defer cancel()
	body, err := pc.Get(ctx, OriginHash(ls.Origin)+"/checkpoint", nil, maxCheckpointIn)
	if errors.Is(err, client.ErrNotExist) {
		return nil // the peer never cosigned this log
	}
	if err != nil {
		return err
	}
	// The peer's checkpoint counts only with a valid log signature and a
	// valid cosignature by the peer.
	vs := append(append([]note.Verifier{}, ls.Verifiers...), p.Verifier)
	n, err := itlog.OpenNote(body, note.VerifierList(vs...))
	if err != nil {
		return fmt.Errorf("peer checkpoint does not verify: %w", err)
	}
	var byLog, byPeer bool
	for _, s := range n.Sigs {
		for _, v := range ls.Verifiers {
			if s.Name == v.Name() && s.Hash == v.KeyHash() {
				byLog = true
			}
		}
		if s.Name == p.Verifier.Name() && s.Hash == p.Verifier.KeyHash() {
			byPeer = true
		}
	}
	if !byLog || !byPeer {
		return fmt.Errorf("peer checkpoint lacks the log's signature or the peer's cosignature")
	}
	obs, err := w.observe(ctx, body, "gossip from "+p.Verifier.Name())
	if err != nil {
		return err
	}
	if obs.Result == ObservedUnverified {
		w.log.Info("gossip: could not compare", "peer", p.Verifier.Name(), "origin", ls.Origin, "detail", obs.Detail)
	}
	return nil
}

func (w *Witness) gossipForks(ctx context.Context, p Peer) error {
	pc, err := w.clientFor(p.URL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, gossipTimeout)
	defer cancel()
	body, err := pc.Get(ctx, "v1/witness/forks", nil, maxForksBody)
	if errors.Is(err, client.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var list struct {
		Forks []Evidence `json:"forks"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("fork list: %w", err)
	}
	for _, e := range list.Forks {
		ls := w.logs[e.Origin]
		if ls == nil || e.Cleared {
			continue
		}
		if err := VerifyEvidence(e, ls.Verifiers...); err != nil {
			w.log.Warn("gossip: ignoring unverifiable fork evidence", "peer", p.Verifier.Name(), "origin", e.Origin, "err", err)
			continue
		}
		ls.mu.Lock()
		w.recordFork(ls, Evidence{
			Origin: e.Origin, Reason: e.Reason, Source: "evidence from peer " + p.Verifier.Name(),
			A: e.A, B: e.B, Proof: e.Proof, ImpliedRoot: e.ImpliedRoot,
		})
		ls.mu.Unlock()
	}
	return nil
}

// Observe compares a checkpoint seen elsewhere (signed by its log; it may
// carry cosignatures) with the latest checkpoint the witness cosigned for its
// origin. Same size and a different root is a fork at once. Different sizes
// are compared with a consistency proof built from the log's tiles (fetched
// from the log's URL and authenticated against the larger checkpoint). A
// proven fork is recorded as evidence and the origin is refused from then
// on. It returns errors matching ErrMalformed, ErrUnknownLog or ErrUntrusted
// for a checkpoint it cannot use, and ErrBusy when a comparison that needs
// the log's tiles cannot start now (see maxObserveFetches, observeRate).
// Results are cached per (origin, size, root) while the witness's own view
// is unchanged.
func (w *Witness) Observe(ctx context.Context, signed []byte) (Observation, error) {
	if len(signed) > MaxBodySize {
		return Observation{}, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxBodySize)
	}
	return w.observe(ctx, signed, "observe")
}

func (w *Witness) observe(ctx context.Context, signed []byte, source string) (Observation, error) {
	ls, theirs, _, err := w.openCheckpoint(signed)
	if err != nil {
		return Observation{}, err
	}
	ls.mu.Lock()
	ours := ls.state
	ls.mu.Unlock()
	obs := Observation{Origin: theirs.Origin, Size: theirs.N, OurSize: ours.tree.N}
	if ours.note == nil {
		obs.Result = ObservedNoView
		return obs, nil
	}
	oursCP, err := itlog.ParseCheckpoint(string(mustText(ours.note)))
	if err != nil {
		return Observation{}, fmt.Errorf("witness: stored checkpoint of %q: %w", ls.Origin, err)
	}
	ev := Evidence{Origin: ls.Origin, Source: source, A: string(ours.note), B: string(signed)}
	switch {
	case theirs.N == ours.tree.N && theirs.Hash == ours.tree.Hash:
		obs.Result = ObservedConsistent
		return obs, nil
	case theirs.N == ours.tree.N:
		ev.Reason = fmt.Sprintf("two roots for size %d", theirs.N)
	default:
		small, large := theirs, oursCP
		if small.N > large.N {
			small, large = large, small
		}
		if small.N == 0 {
			obs.Result = ObservedConsistent // every tree extends the empty one (size-0 roots are checked on add)
			return obs, nil
		}
		// Fetching tiles costs the witness and the log: remember results
		// per (origin, size, root), and bound how many run and how often.
		key := observeKey{origin: ls.Origin, tree: theirs.Tree}
		now := time.Now()
		if cached, ok := w.obs.lookup(key, ours.tree, now); ok {
			return cached, nil
		}
		if err := w.obs.acquire(); err != nil {
			return Observation{}, err
		}
		proof, implied, err := w.proveFromTiles(ctx, ls, small.N, large.Tree)
		w.obs.release()
		if err != nil {
			obs.Result = ObservedUnverified
			obs.Detail = err.Error()
			w.obs.remember(key, observeEntry{ours: ours.tree, obs: obs, expires: now.Add(unverifiedTTL)})
			return obs, nil
		}
		if implied == small.Hash {
			obs.Result = ObservedConsistent
			w.obs.remember(key, observeEntry{ours: ours.tree, obs: obs})
			return obs, nil
		}
		ev.Reason = fmt.Sprintf("size %d is not a prefix of size %d: the log's tiles under the larger checkpoint give a different root for the smaller size", small.N, large.N)
		ev.Proof = encodeProof(proof)
		ev.ImpliedRoot = base64.StdEncoding.EncodeToString(implied[:])
	}
	if err := VerifyEvidence(ev, ls.Verifiers...); err != nil {
		// Should not happen: we only build conclusive evidence.
		return Observation{}, fmt.Errorf("witness: built unverifiable evidence: %w", err)
	}
	ls.mu.Lock()
	w.recordFork(ls, ev)
	ls.mu.Unlock()
	obs.Result = ObservedFork
	obs.Detail = ev.Reason
	return obs, nil
}

// mustText returns the text of a stored note (always well formed).
func mustText(n []byte) []byte {
	t, _, ok := itlog.SplitNote(n)
	if !ok {
		return nil
	}
	return t
}

// proveFromTiles fetches the log's tiles from its URL, authenticates them
// against tree (the larger, signed checkpoint), and returns the consistency
// proof from size m to tree.N together with the root of size m that those
// tiles imply.
func (w *Witness) proveFromTiles(ctx context.Context, ls *logState, m int64, tree tlog.Tree) (tlog.TreeProof, tlog.Hash, error) {
	if ls.URL == "" {
		return nil, tlog.Hash{}, errors.New("no URL configured for the log: cannot fetch tiles")
	}
	lc, err := w.clientFor(ls.URL)
	if err != nil {
		return nil, tlog.Hash{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, gossipTimeout)
	defer cancel()
	r := tlog.TileHashReader(tree, &tileFetcher{ctx: ctx, c: lc})
	proof, err := tlog.ProveTree(tree.N, m, r)
	if err != nil {
		return nil, tlog.Hash{}, fmt.Errorf("consistency proof from the log's tiles: %w", err)
	}
	implied, err := tlog.TreeHash(m, r)
	if err != nil {
		return nil, tlog.Hash{}, fmt.Errorf("tree hash from the log's tiles: %w", err)
	}
	if err := itlog.CheckConsistency(proof, m, implied, tree.N, tree.Hash); err != nil {
		return nil, tlog.Hash{}, fmt.Errorf("tiles gave an inconsistent proof: %w", err)
	}
	return proof, implied, nil
}

// tileFetcher is a tlog.TileReader over a log's tlog-tiles client. Partial
// tiles that are gone are read from the full tile (a partial tile is a
// prefix of it).
type tileFetcher struct {
	ctx context.Context
	c   *client.Client
}

func (f *tileFetcher) Height() int { return itlog.TileHeight }

func (f *tileFetcher) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := f.c.Tile(f.ctx, t, nil)
		if err != nil && t.W < itlog.TileWidth {
			full := t
			full.W = itlog.TileWidth
			data, err = f.c.Tile(f.ctx, full, nil)
		}
		if err != nil {
			return nil, err
		}
		if len(data) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s is %d bytes, want %d", itlog.TilePath(t), len(data), t.W*tlog.HashSize)
		}
		out[i] = data[:t.W*tlog.HashSize]
	}
	return out, nil
}

func (f *tileFetcher) SaveTiles([]tlog.Tile, [][]byte) {}

// noRedirect is the CheckRedirect of every HTTP client the witness uses: a
// peer or a log that redirects is answered as it answered, never followed
// (a redirect could send the witness's requests anywhere).
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// clientFor returns the tlog-tiles client for base (a peer's monitoring
// prefix or a log's tiles prefix), made once per base at Open.
func (w *Witness) clientFor(base string) (*client.Client, error) {
	if c := w.clients[base]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("witness: no client for %q", base)
}

// newClients builds one client per peer and log URL, sharing an HTTP
// client that never follows redirects. Gossip does not retry within a
// round: the next round is the retry.
func (w *Witness) newClients() error {
	hc := &http.Client{Timeout: gossipTimeout}
	if w.opts.HTTPClient != nil {
		c := *w.opts.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = noRedirect
	w.clients = make(map[string]*client.Client)
	add := func(base string) error {
		if base == "" || w.clients[base] != nil {
			return nil
		}
		c, err := client.New(base, "", client.WithOptions(client.Options{HTTPClient: hc, Retries: -1, UserAgent: "indelible-witness"}))
		if err != nil {
			return fmt.Errorf("witness: %w", err)
		}
		w.clients[base] = c
		return nil
	}
	for _, p := range w.opts.Peers {
		if err := add(p.URL); err != nil {
			return err
		}
	}
	for _, l := range w.opts.Logs {
		if err := add(l.URL); err != nil {
			return err
		}
	}
	return nil
}
