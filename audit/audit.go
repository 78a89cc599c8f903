// Package audit replays a c2sp.org/tlog-tiles transparency log from its
// tiles and checks that nothing was removed or rewritten: it verifies the
// checkpoint's log signature and witness cosignatures (c2sp.org/tlog-
// cosignature) against a policy, recomputes every leaf hash (RFC 6962) from
// the entry bundles, rebuilds the tree, compares every stored hash tile, full
// and partial, byte for byte, and compares the root with the checkpoint.
//
// Given the state of a previous run (the last verified checkpoint) it checks
// the new checkpoint is consistent with it twice: by recomputing the old root
// from the tiles, and with the log's consistency proof (or one built from the
// tiles when the log has no proof endpoint). Then it replays only the new
// part.
//
// It works against any C2SP tlog-tiles log through indelible.dev/client
// and never imports the log's own storage: it trusts nothing the log says
// that it cannot recompute.
//
//	res, err := audit.Audit(ctx, audit.Options{Client: c, Log: v}, nil)
//	var f *audit.Failure
//	if errors.As(err, &f) { /* the log is inconsistent: f names what failed */ }
package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"indelible.dev/client"
	itlog "indelible.dev/tlog"
)

// Failure kinds: what part of the log failed verification.
const (
	KindCheckpoint  = "checkpoint"  // bad log signature, malformed, or wrong origin
	KindWitness     = "witness"     // a bad cosignature, or too few for the policy
	KindRoot        = "root"        // the tiles' root differs from the checkpoint's
	KindFork        = "fork"        // the log's history differs from a verified checkpoint
	KindBackwards   = "backwards"   // the checkpoint is smaller than a verified one
	KindConsistency = "consistency" // the consistency proof does not verify
	KindTile        = "tile"        // a hash tile is missing, malformed or altered
	KindBundle      = "bundle"      // an entry bundle is missing, malformed or altered
	KindEntry       = "entry"       // an entry failed Options.CheckEntry
)

// Failure is a verification failure: the log served something inconsistent
// with itself or with a verified checkpoint. Any other error from Audit is
// trouble reaching the log (network, timeouts, HTTP errors after retries) or
// a caller's mistake, and says nothing about the log's integrity.
type Failure struct {
	Kind     string // one of the Kind constants
	Resource string // what failed: a tile path, "checkpoint", an index
	Msg      string
	// Checkpoint is the signed checkpoint this run fetched, if any, and
	// Previous the verified one from the state, if any: together the
	// evidence of a fork to hand to witnesses.
	Checkpoint, Previous []byte
}

func (f *Failure) Error() string {
	return fmt.Sprintf("verification failed: %s: %s", f.Resource, f.Msg)
}

func failf(kind, resource, format string, args ...any) *Failure {
	return &Failure{Kind: kind, Resource: resource, Msg: fmt.Sprintf(format, args...)}
}

// Options configure an audit.
type Options struct {
	// Client reaches the log. Required.
	Client *client.Client
	// Log verifies the log's signature; its name is the log's origin.
	// Required.
	Log note.Verifier
	// Witnesses verify cosignatures (cosignature/v1 verifiers, from
	// github.com/transparency-dev/formats/note.NewVerifierForCosignatureV1).
	Witnesses []note.Verifier
	// Quorum is how many distinct Witnesses must have cosigned the
	// checkpoint. Default: all of them.
	Quorum int
	// Parallel is the number of bundle workers, each with one request in
	// flight and one bundle in memory (a few KiB typically, at most
	// client.MaxBundleSize for a bundle of maximal entries). Default
	// client.DefaultParallelism.
	Parallel int
	// CheckEntry, if set, is called for each replayed entry (concurrently,
	// not in order; entry is only valid during the call). An error stops the
	// audit as a Failure of KindEntry. Room for checking event commitments.
	CheckEntry func(i int64, entry []byte) error
	// Progress, if set, is called by one goroutine after each bundle with
	// the entries verified so far and the total this run will verify.
	Progress func(done, total int64)
}

// Result describes a successful audit.
type Result struct {
	Origin    string
	Size      int64     // the verified tree size
	Root      tlog.Hash // the verified root
	From      int64     // the verified size the run started from (0: full replay)
	Entries   int64     // entries whose leaf hashes were recomputed
	Tiles     int64     // hash tiles compared (full and partial)
	Bundles   int64     // entry bundles parsed
	Cosigners []string  // names of the witnesses whose cosignatures verified
	// CosignedAt is the time of the newest verified witness cosignature
	// (zero without one): the checkpoint itself carries no time, so this
	// is how fresh the log's view is known to be.
	CosignedAt time.Time
	Duration   time.Duration
	Checkpoint []byte // the verified signed checkpoint note
	// ProofSource says how consistency with the previous state was checked
	// besides recomputation: "server" (the log's proof endpoint), "tiles" (a
	// proof built from the tiles), or "" (no previous state).
	ProofSource string
}

// Rate returns the entries verified per second.
func (r *Result) Rate() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Entries) / r.Duration.Seconds()
}

// Audit fetches the log's checkpoint, verifies its signatures against the
// policy and, if prev is not nil, its consistency with prev; then replays the
// log from prev.Size (or from 0) to the checkpoint. It returns a *Failure
// (test with errors.As) when the log fails verification, and another error
// when it cannot complete. prev must be a state a previous Audit of the same
// log produced (see NewState); it is not modified.
func Audit(ctx context.Context, opts Options, prev *State) (*Result, error) {
	start := time.Now()
	if opts.Client == nil || opts.Log == nil {
		return nil, errors.New("audit: Options.Client and Options.Log are required")
	}
	if opts.Parallel <= 0 {
		opts.Parallel = client.DefaultParallelism
	}
	origin := opts.Log.Name()
	if prev != nil && prev.Origin != origin {
		return nil, fmt.Errorf("audit: state is for log %q, not %q", prev.Origin, origin)
	}
	msg, err := opts.Client.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: fetching checkpoint: %w", err)
	}
	cp, cosigners, err := verifyCheckpoint(msg, opts)
	if err != nil {
		return nil, withEvidence(err, msg, prev)
	}
	res := &Result{Origin: origin, Size: cp.N, Root: cp.Hash, Cosigners: cosigners, Checkpoint: msg,
		CosignedAt: newestCosignature(msg, opts.Witnesses)}

	var m int64
	var oldRoot tlog.Hash
	if prev != nil {
		m, oldRoot = prev.Size, prev.Root
		if cp.N < m {
			return nil, withEvidence(failf(KindBackwards, "checkpoint",
				"size %d is smaller than the previously verified size %d", cp.N, m), msg, prev)
		}
		if cp.N == m && cp.Hash != oldRoot {
			return nil, withEvidence(failf(KindFork, "checkpoint",
				"size %d has root %s, but the previously verified checkpoint of that size has root %s", cp.N, cp.Hash, oldRoot), msg, prev)
		}
		if m > 0 && m < cp.N {
			src, err := checkProof(ctx, opts, m, oldRoot, cp.Tree)
			if err != nil {
				return nil, withEvidence(err, msg, prev)
			}
			res.ProofSource = src
		}
	}
	res.From = m

	r := &replay{c: opts.Client, n: cp.N, parallel: opts.Parallel, progress: opts.Progress}
	if opts.CheckEntry != nil {
		r.check = func(i int64, e []byte) error {
			if err := opts.CheckEntry(i, e); err != nil {
				return failf(KindEntry, fmt.Sprintf("entry %d", i), "%v", err)
			}
			return nil
		}
	}
	got, err := r.start(ctx, m)
	if err != nil {
		return nil, withEvidence(err, msg, prev)
	}
	if prev != nil && got != oldRoot {
		return nil, withEvidence(failf(KindFork, "checkpoint",
			"the tiles of size %d give root %s, but the previously verified checkpoint of size %d has root %s: history was rewritten",
			cp.N, got, m, oldRoot), msg, prev)
	}
	if err := r.run(ctx, m); err != nil {
		return nil, withEvidence(err, msg, prev)
	}
	if got := r.root(); got != cp.Hash {
		return nil, withEvidence(failf(KindRoot, "checkpoint",
			"the tiles of size %d give root %s, but the checkpoint says %s", cp.N, got, cp.Hash), msg, prev)
	}
	res.Entries, res.Tiles, res.Bundles = r.entries, r.tiles, r.bundles
	res.Duration = time.Since(start)
	return res, nil
}

// withEvidence attaches the checkpoints to a Failure.
func withEvidence(err error, msg []byte, prev *State) error {
	var f *Failure
	if errors.As(err, &f) {
		f.Checkpoint = msg
		if prev != nil {
			f.Previous = []byte(prev.Checkpoint)
		}
	}
	return err
}

// verifyCheckpoint checks the log signature and the witness policy
// (tlog.Policy: the log's key by name and key hash, the witnesses apart, so
// no witness can stand in for the log), and parses the checkpoint strictly.
func verifyCheckpoint(msg []byte, opts Options) (itlog.Checkpoint, []string, error) {
	q := opts.Quorum
	if q <= 0 {
		q = len(opts.Witnesses)
	}
	p := itlog.Policy{Log: opts.Log, Witnesses: opts.Witnesses, Quorum: q}
	if err := p.Check(); err != nil {
		return itlog.Checkpoint{}, nil, fmt.Errorf("audit: %w", err)
	}
	origin := opts.Log.Name()
	cp, cosigners, err := p.Open(msg)
	if err == nil {
		return cp, cosigners, nil
	}
	var inv *note.InvalidSignatureError
	if errors.As(err, &inv) && !(inv.Name == origin && inv.Hash == opts.Log.KeyHash()) {
		return cp, nil, failf(KindWitness, "checkpoint", "the cosignature by witness %q (key %08x) does not verify", inv.Name, inv.Hash)
	}
	if errors.Is(err, itlog.ErrPolicy) && cp.Origin == origin {
		// Policy.Open returns the checkpoint only when the log's
		// signature verified and the quorum was not met.
		return cp, nil, failf(KindWitness, "checkpoint",
			"cosigned by %d of the %d given witnesses %v, the policy requires %d", len(cosigners), len(opts.Witnesses), cosigners, q)
	}
	return cp, nil, failf(KindCheckpoint, "checkpoint", "%v", err)
}

// newestCosignature returns the time of the newest cosignature in msg that
// verifies with one of witnesses, or the zero time.
func newestCosignature(msg []byte, witnesses []note.Verifier) time.Time {
	var newest time.Time
	if len(witnesses) == 0 {
		return newest
	}
	n, err := itlog.OpenNote(msg, note.VerifierList(witnesses...))
	if err != nil {
		return newest
	}
	for _, s := range n.Sigs {
		if t, err := itlog.CosignatureTime(s); err == nil && t.After(newest) {
			newest = t
		}
	}
	return newest
}

// checkProof verifies the log's consistency proof from (m, oldRoot) to tree,
// or, if the log has no proof endpoint, one built from its tiles. It returns
// which of the two it checked.
func checkProof(ctx context.Context, opts Options, m int64, oldRoot tlog.Hash, tree tlog.Tree) (string, error) {
	p, err := opts.Client.ConsistencyProof(ctx, m, tree.N)
	src := "server"
	if noProofEndpoint(err) {
		src = "tiles"
		p, err = tlog.ProveTree(tree.N, m, tileHashReader(ctx, opts, tree.N))
	}
	if err != nil {
		var f *Failure
		if errors.As(err, &f) {
			return src, err
		}
		return src, fmt.Errorf("audit: consistency proof %d->%d: %w", m, tree.N, err)
	}
	if err := itlog.CheckConsistency(p, m, oldRoot, tree.N, tree.Hash); err != nil {
		return src, failf(KindConsistency, fmt.Sprintf("consistency proof %d->%d", m, tree.N),
			"the %s proof does not verify from the previously verified root %s to the checkpoint's: %v", src, oldRoot, err)
	}
	return src, nil
}

// noProofEndpoint reports whether err means the log does not serve
// Indelible's proof endpoint (any C2SP log may lack it): a 404, another 4xx
// but 429, or a 501.
func noProofEndpoint(err error) bool {
	var se *client.StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.Status == 501 || (se.Status >= 400 && se.Status < 500 && se.Status != 429)
}

// tileHashReader reads stored hashes from the log's tiles as the tree of
// size n implies them.
func tileHashReader(ctx context.Context, opts Options, n int64) tlog.HashReader {
	return itlog.StoredHashReader(func(tiles []tlog.Tile) ([][]byte, error) {
		out := make([][]byte, len(tiles))
		g, ctx := errgroup.WithContext(ctx)
		g.SetLimit(opts.Parallel)
		for i := range tiles {
			g.Go(func() error {
				t, ok := tileAt(tiles[i].L, tiles[i].N, n)
				if !ok {
					return fmt.Errorf("audit: tile %d/%d not in a tree of size %d", tiles[i].L, tiles[i].N, n)
				}
				b, err := fetchHashTile(ctx, opts.Client, t, n, nil)
				out[i] = b
				return err
			})
		}
		return out, g.Wait()
	})
}
