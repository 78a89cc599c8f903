package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/atomicfile"
	itlog "indelible.dev/tlog"
)

// The key guard: a log key never signs two histories.
//
// The one unforgivable failure of a transparency log is two different roots
// for one size under its key. The store alone cannot prevent it: lose the
// store (a volume not mounted, a restore from an older backup, a key copied
// to another machine) and a fresh store would sign new roots for sizes the
// key already signed. So the key carries its own memory, a high-water mark
// kept beside it:
//
//   - the store holds a random store ID (written when it is created) and the
//     key it belongs to (name and key hash); another key is refused;
//   - the high-water mark file names the store ID and the largest signed
//     tree (size and root). It is rewritten atomically after publishes,
//     coalesced (at most once per KeyGuard.Interval, never an fsync per
//     commit), and exactly at a clean Close;
//   - Open refuses a store that is missing (without KeyGuard.Init), is
//     another store, is smaller than the mark, or has another root at the
//     mark's size. Init creates a new store only for a key whose mark shows
//     it never signed a non-empty tree, and never reuses an existing store.
//
// The residual window is the lag of the mark: a store restored from a backup
// taken less than Interval before a crash can be behind what the key signed
// and the mark recorded. Witnesses close it when configured: at Open, a
// witness whose monitoring endpoint reports a larger tree, or another root
// at a size the store holds, also stops the log (checkWitnesses).

// DefaultGuardInterval is the default of KeyGuard.Interval.
const DefaultGuardInterval = 250 * time.Millisecond

// Errors of the key guard.
var (
	// ErrKeyGuard means Open refused to sign with the key: the store is
	// missing, older than or different from what the key has signed.
	ErrKeyGuard = errors.New("ledger: refusing to sign: this key may have signed another history")
	// ErrWrongKey means the store belongs to another log key.
	ErrWrongKey = errors.New("ledger: the store belongs to another key")
)

// KeyGuard configures the key's high-water mark (Options.KeyGuard).
type KeyGuard struct {
	// File is the high-water mark file, kept beside the key (indelible
	// serve uses <key file>.hwm). Its directory must be writable.
	File string
	// Init allows creating a new store: the operator says the key has never
	// signed a log (indelible serve --init). Open refuses Init when the mark
	// shows a signed tree of size > 0, or when the store already exists.
	// Without Init, Open refuses a directory holding no store.
	Init bool
	// Interval is the least time between two rewrites of the mark while
	// the log runs. Default DefaultGuardInterval.
	Interval time.Duration

	fs guardFS // default: the operating system's files
}

// guardFS is the file I/O of the guard, replaceable in tests.
type guardFS interface {
	ReadFile(name string) ([]byte, error)
	// WriteFileAtomic replaces name with data: after a crash the file holds
	// the old or the new contents, never a mix, and a nil return means the
	// new contents are durable.
	WriteFileAtomic(name string, data []byte) error
}

// highWater is the content of the mark: the store the key signs for, and
// the largest tree it signed.
type highWater struct {
	storeID []byte
	tree    tlog.Tree
}

const hwmHeader = "indelible key high-water mark v1\n"

func (h *highWater) marshal() []byte {
	return fmt.Appendf(nil, "%sstore %s\nsize %d\nroot %s\n", hwmHeader,
		hex.EncodeToString(h.storeID), h.tree.N, base64.StdEncoding.EncodeToString(h.tree.Hash[:]))
}

func parseHighWater(b []byte) (*highWater, error) {
	rest, ok := bytes.CutPrefix(b, []byte(hwmHeader))
	lines := strings.Split(string(rest), "\n")
	if !ok || len(lines) != 4 || lines[3] != "" {
		return nil, errors.New("not a high-water mark file")
	}
	var h highWater
	var err error
	sid, ok1 := strings.CutPrefix(lines[0], "store ")
	size, ok2 := strings.CutPrefix(lines[1], "size ")
	root, ok3 := strings.CutPrefix(lines[2], "root ")
	if !ok1 || !ok2 || !ok3 {
		return nil, errors.New("malformed high-water mark")
	}
	if h.storeID, err = hex.DecodeString(sid); err != nil || len(h.storeID) != storeIDSize {
		return nil, errors.New("malformed store ID in high-water mark")
	}
	if h.tree.N, err = itlog.ParseSize(size); err != nil {
		return nil, fmt.Errorf("malformed size in high-water mark: %w", err)
	}
	if h.tree.Hash, err = itlog.ParseHash(root); err != nil {
		return nil, fmt.Errorf("malformed root in high-water mark: %w", err)
	}
	return &h, nil
}

const storeIDSize = 16

func newStoreID() []byte {
	id := make([]byte, storeIDSize)
	rand.Read(id)
	return id
}

// keyID is what the store records of its key: name and key hash.
func keyID(s note.Signer) []byte {
	return fmt.Appendf(nil, "%s %08x", s.Name(), s.KeyHash())
}

// guard is the running key guard of one Log, a publish hook (hooks.go):
// Open checks the store against the mark, Signed wakes guardLoop, Close
// writes the final mark.
type guard struct {
	cfg      KeyGuard
	fs       guardFS
	log      *slog.Logger
	hwm      *highWater // the mark read before the store was opened
	l        *Log       // set by Open
	wake     chan struct{}
	stop     chan struct{} // closed by Close
	loopDone chan struct{} // closed when guardLoop returns

	mu      sync.Mutex // serializes writes; guards storeID and last
	storeID []byte
	last    tlog.Tree
	written bool
}

// openGuard reads the mark, if any.
func openGuard(cfg *KeyGuard, logger *slog.Logger) (*guard, *highWater, error) {
	if cfg.File == "" {
		return nil, nil, errors.New("ledger: KeyGuard.File is required")
	}
	g := &guard{cfg: *cfg, fs: cfg.fs, log: logger, wake: make(chan struct{}, 1), stop: make(chan struct{}), loopDone: make(chan struct{})}
	if g.fs == nil {
		g.fs = osGuardFS{}
	}
	if g.cfg.Interval <= 0 {
		g.cfg.Interval = DefaultGuardInterval
	}
	b, err := g.fs.ReadFile(cfg.File)
	if errors.Is(err, fs.ErrNotExist) {
		return g, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: reading the key's high-water mark: %w", err)
	}
	h, err := parseHighWater(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w (restore it from a backup, or, if the key never signed anything, delete it)", ErrKeyGuard, cfg.File, err)
	}
	return g, h, nil
}

// mayCreate reports whether a new store may be created for the key.
func (g *guard) mayCreate(h *highWater) error {
	switch {
	case h != nil && h.tree.N > 0:
		return fmt.Errorf("%w: the store is missing, and the key has signed a log of size %d (store %x, according to %s). "+
			"Restore that store (the newest copy; an older one is refused too), or start a new log with a new key; "+
			"--init cannot reuse a key that has signed entries", ErrKeyGuard, h.tree.N, h.storeID, g.cfg.File)
	case !g.cfg.Init:
		return fmt.Errorf("%w: the store is missing and the key already exists. If it is the log's store that is lost, restore it; "+
			"if this key has never signed a log, start a new log explicitly with --init", ErrKeyGuard)
	}
	return nil
}

// check compares the opened store (its tree published in memory, not yet
// visible) with the mark, then records the store in the mark.
func (g *guard) check(l *Log, h *highWater) error {
	id, err := l.get(keyStoreID)
	if errors.Is(err, ErrNotFound) {
		// A store from before the key guard: give it an ID now.
		id = newStoreID()
		if err := l.set(keyStoreID, id, true); err != nil {
			return fmt.Errorf("ledger: recording the store ID: %w", err)
		}
	} else if err != nil {
		return err
	}
	tree := l.pub.Load().cp.Tree
	// A mark at size 0 never refuses: every empty tree has the same root.
	if h != nil && h.tree.N > 0 {
		if !bytes.Equal(h.storeID, id) {
			return fmt.Errorf("%w: the key signed a log of size %d in store %x (according to %s), but this is store %x. "+
				"Point the log at its own store, or give this store its own key", ErrKeyGuard, h.tree.N, h.storeID, g.cfg.File, id)
		}
		if tree.N < h.tree.N {
			return fmt.Errorf("%w: the store holds %d entries, but the key signed a tree of size %d (according to %s): "+
				"the store is older than what was published (restored from a backup?). Restore the newest copy of the store", ErrKeyGuard, tree.N, h.tree.N, g.cfg.File)
		}
		if root, err := l.TreeHash(h.tree.N); err != nil || root != h.tree.Hash {
			return fmt.Errorf("%w: at size %d the store's root is %v, but the key signed %v (according to %s): "+
				"this store holds another history", ErrKeyGuard, h.tree.N, root, h.tree.Hash, g.cfg.File)
		}
	}
	g.mu.Lock()
	g.storeID = id
	g.mu.Unlock()
	if err := g.write(tree); err != nil {
		return fmt.Errorf("%w (the key's directory must be writable)", err)
	}
	return nil
}

// Open checks the store against the mark (check), records it, and starts
// guardLoop.
func (g *guard) Open(l *Log) error {
	if err := g.check(l, g.hwm); err != nil {
		return err
	}
	g.l = l
	go g.loop()
	return nil
}

// Signed asks guardLoop to record the newest signed tree; it never blocks.
// The mark covers signed trees, released or not: a signature exists.
func (g *guard) Signed(itlog.Checkpoint) {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Released does nothing: Signed already recorded the tree.
func (g *guard) Released(itlog.Checkpoint) {}

// Close stops guardLoop and writes the mark exactly at a clean close: the
// newest signed tree. Log.Close calls it after the publisher stopped.
func (g *guard) Close() {
	if g.l == nil {
		return
	}
	close(g.stop)
	<-g.loopDone
	g.write(g.l.pub.Load().cp.Tree)
}

// write records tree in the mark, unless it is already recorded.
func (g *guard) write(tree tlog.Tree) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.written && g.last == tree {
		return nil
	}
	h := highWater{storeID: g.storeID, tree: tree}
	if err := g.fs.WriteFileAtomic(g.cfg.File, h.marshal()); err != nil {
		err = fmt.Errorf("ledger: writing the key's high-water mark %s: %w", g.cfg.File, err)
		g.log.Error("key guard", "err", err)
		return err
	}
	g.last, g.written = tree, true
	return nil
}

// loop (guardLoop) records published trees in the mark, at most once per
// Interval, until Close.
func (g *guard) loop() {
	defer close(g.loopDone)
	for {
		select {
		case <-g.wake:
		case <-g.stop:
			return
		}
		g.write(g.l.pub.Load().cp.Tree)
		select {
		case <-time.After(g.cfg.Interval):
		case <-g.stop:
			return
		}
	}
}

// osGuardFS writes through a temporary file, fsync, rename and a directory
// fsync, with mode 0600.
type osGuardFS struct{}

func (osGuardFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

func (osGuardFS) WriteFileAtomic(name string, data []byte) error {
	return atomicfile.Write(name, data)
}

// checkKey refuses a store that belongs to another key, and records the key
// in a store from before the key was recorded.
func (l *Log) checkKey() error {
	want := keyID(l.signer)
	got, err := l.get(keyKey)
	if errors.Is(err, ErrNotFound) {
		if err := l.set(keyKey, want, true); err != nil {
			return fmt.Errorf("ledger: recording the log key: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: the store was created with key %q, this is key %q. Start the log with the key it was created with "+
			"(a lost key cannot be replaced: the log's verifiers know only that one)", ErrWrongKey, got, want)
	}
	return nil
}

// WitnessMonitor is implemented by a Witness whose monitoring endpoint can be
// read (GET /<hex sha256 of the origin>/checkpoint on the real witness).
type WitnessMonitor interface {
	// LatestCheckpoint returns the newest checkpoint of origin that the
	// witness cosigned, as a signed note carrying the log's signature and
	// the cosignature, or nil and no error if the witness knows no
	// checkpoint of origin.
	LatestCheckpoint(ctx context.Context, origin string) ([]byte, error)
}

// checkWitnesses asks every witness that can tell what it last cosigned for
// this log, before anything is signed or served: a witness that cosigned a
// larger tree than the store holds, or another root at a size the store
// holds, proves that the key signed a history this store does not have.
// Unreachable witnesses, and answers that do not carry both a valid log
// signature and a valid cosignature, are logged and skipped (they cannot
// prove anything; the high-water mark still applies).
func (l *Log) checkWitnesses(cfg WitnessConfig) error {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultWitnessTimeout
	}
	tree := l.pub.Load().cp.Tree
	for _, w := range cfg.Witnesses {
		m, ok := w.(WitnessMonitor)
		if !ok {
			continue
		}
		name := w.Verifier().Name()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		msg, err := m.LatestCheckpoint(ctx, l.origin)
		cancel()
		if err != nil {
			l.log.Warn("could not ask a witness what it cosigned; relying on the high-water mark", "witness", name, "err", err)
			continue
		}
		if msg == nil {
			continue
		}
		cp, err := l.openWitnessed(msg, w.Verifier())
		if err != nil {
			l.log.Warn("ignoring a witness's latest checkpoint that does not verify", "witness", name, "err", err)
			continue
		}
		if cp.N > tree.N {
			return fmt.Errorf("%w: %w: witness %s cosigned size %d, the store holds %d entries: the store lost data "+
				"(restore the newest copy) or this key signed another log", ErrKeyGuard, ErrWitnessAhead, name, cp.N, tree.N)
		}
		if root, err := l.TreeHash(cp.N); err != nil || root != cp.Hash {
			return fmt.Errorf("%w: witness %s cosigned root %v at size %d, the store has %v: this store holds another history",
				ErrKeyGuard, name, cp.Hash, cp.N, root)
		}
	}
	return nil
}

// openWitnessed verifies a checkpoint note carrying this log's signature and
// witness v's cosignature, and parses it.
func (l *Log) openWitnessed(msg []byte, v note.Verifier) (itlog.Checkpoint, error) {
	n, err := itlog.OpenNote(msg, note.VerifierList(selfVerifier{l.signer}, v))
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	var byLog, byWitness bool
	for _, s := range n.Sigs {
		byLog = byLog || (s.Name == l.signer.Name() && s.Hash == l.signer.KeyHash())
		byWitness = byWitness || (s.Name == v.Name() && s.Hash == v.KeyHash())
	}
	if !byLog || !byWitness {
		return itlog.Checkpoint{}, errors.New("not signed by both the log and the witness")
	}
	cp, err := itlog.ParseCheckpoint(n.Text)
	if err != nil {
		return itlog.Checkpoint{}, err
	}
	if cp.Origin != l.origin {
		return itlog.Checkpoint{}, fmt.Errorf("checkpoint of origin %q", cp.Origin)
	}
	return cp, nil
}

// selfVerifier verifies the log's own signatures with its signer: Ed25519
// signatures are deterministic, so a signature is the log's exactly when
// signing the same message again gives the same bytes.
type selfVerifier struct{ s note.Signer }

func (v selfVerifier) Name() string    { return v.s.Name() }
func (v selfVerifier) KeyHash() uint32 { return v.s.KeyHash() }
func (v selfVerifier) Verify(msg, sig []byte) bool {
	mine, err := v.s.Sign(msg)
	return err == nil && subtle.ConstantTimeCompare(mine, sig) == 1
}
