package witness

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/atomicfile"
	itlog "indelible.dev/tlog"
)

// The high-water mark is the witness's own record, kept beside its key and
// apart from the store, of the latest tree it cosigned for each origin. A
// store that was wiped, not mounted, or restored from an older backup would
// otherwise see a log as new (or as older than it is) and cosign a second
// root for a size it already cosigned: the one thing a witness must never
// do. Open compares the store with the mark and refuses to start when the
// store is behind it (ErrBehindHighWater).
//
// The file is text, one line per origin, rewritten whole and atomically
// (temporary file, fsync, rename, fsync of the directory), mode 0600:
//
//	indelible witness high-water mark v1
//	key <the witness's cosignature/v1 verifier key>
//	<origin> <size> <base64 root>
//	...
//
// Ordering: AddCheckpoint commits the store first, then the mark, then
// returns the cosignature. A crash between the two leaves the store ahead of
// the mark, which Open accepts (nothing was released that the mark does not
// cover) and repairs; the mark is never ahead of a released cosignature's
// store state by construction.
const hwmHeader = "indelible witness high-water mark v1"

// maxHWMFile bounds the high-water mark file read at Open.
const maxHWMFile = 16 << 20

// ErrBehindHighWater is returned by Open when the store holds less than the
// witness's high-water mark for some origin (or another root at the marked
// size): the store was lost or restored from an older copy. Restore a store
// at least as new, or, knowing the store was lost, set
// Options.ResumeFromHighWater to continue each such origin from the marked
// tree.
var ErrBehindHighWater = errors.New("witness: the store is behind the witness's high-water mark")

// hwm is the parsed high-water mark: the witness's verifier key and, per
// origin, the latest cosigned tree.
type hwm struct {
	key   string
	trees map[string]tlog.Tree
}

// parseHWM parses a high-water mark file strictly.
func parseHWM(b []byte) (hwm, error) {
	bad := func(format string, args ...any) (hwm, error) {
		return hwm{}, fmt.Errorf("witness: high-water mark: "+format, args...)
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		return bad("does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) < 2 || lines[0] != hwmHeader {
		return bad("missing header %q", hwmHeader)
	}
	key, ok := strings.CutPrefix(lines[1], "key ")
	if !ok || key == "" {
		return bad("missing key line")
	}
	h := hwm{key: key, trees: make(map[string]tlog.Tree)}
	for _, l := range lines[2:] {
		f := strings.Split(l, " ")
		if len(f) != 3 || !itlog.ValidOrigin(f[0]) {
			return bad("malformed line %q", l)
		}
		n, err := itlog.ParseSize(f[1])
		if err != nil {
			return bad("size of %q: %v", f[0], err)
		}
		root, err := itlog.ParseHash(f[2])
		if err != nil {
			return bad("root of %q: %v", f[0], err)
		}
		if _, dup := h.trees[f[0]]; dup {
			return bad("origin %q twice", f[0])
		}
		h.trees[f[0]] = tlog.Tree{N: n, Hash: root}
	}
	return h, nil
}

// String formats h as the file's contents, origins sorted.
func (h hwm) String() string {
	var b strings.Builder
	b.WriteString(hwmHeader + "\n")
	b.WriteString("key " + h.key + "\n")
	origins := make([]string, 0, len(h.trees))
	for o := range h.trees {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	for _, o := range origins {
		t := h.trees[o]
		fmt.Fprintf(&b, "%s %d %s\n", o, t.N, base64.StdEncoding.EncodeToString(t.Hash[:]))
	}
	return b.String()
}

// readHWM reads the mark at file; a missing file is an empty mark.
func readHWM(file string) (hwm, bool, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return hwm{trees: make(map[string]tlog.Tree)}, false, nil
	}
	if err != nil {
		return hwm{}, false, fmt.Errorf("witness: reading high-water mark: %w", err)
	}
	if len(b) > maxHWMFile {
		return hwm{}, false, fmt.Errorf("witness: high-water mark %s is larger than %d bytes", file, maxHWMFile)
	}
	h, err := parseHWM(b)
	return h, true, err
}

// writeHWM replaces file with h atomically and durably: a temporary file in
// the same directory, written and fsynced, renamed over file, and the
// directory fsynced so the rename survives a crash.
func writeHWM(file string, h hwm) error {
	if err := atomicfile.Write(file, []byte(h.String())); err != nil {
		return fmt.Errorf("witness: writing high-water mark: %w", err)
	}
	return nil
}

// checkHighWater compares the loaded store with the high-water mark at
// Open: it refuses a mark of another key and a store behind the mark (unless
// ResumeFromHighWater, which then seeds those origins from the mark), and
// brings the mark up to the store where the store is ahead (a crash between
// the store's commit and the mark's). Origins in the mark that are not
// configured are kept as they are.
func (w *Witness) checkHighWater() error {
	file := w.opts.HighWaterFile
	h, exists, err := readHWM(file)
	if err != nil {
		return err
	}
	if exists && h.key != w.cosigner.VKey() {
		return fmt.Errorf("witness: high-water mark %s belongs to key %s, not to this witness's key %s", file, h.key, w.cosigner.VKey())
	}
	h.key = w.cosigner.VKey()
	var behind []string
	changed := !exists
	for origin, ls := range w.logs {
		mark, ok := h.trees[origin]
		st := ls.state.tree
		switch {
		case !ok || st.N > mark.N:
			if ls.state.note != nil {
				h.trees[origin] = st
				changed = true
			}
		case st.N == mark.N && st.Hash == mark.Hash:
		default:
			if !w.opts.ResumeFromHighWater {
				behind = append(behind, fmt.Sprintf("%s: store at size %d, high-water mark at size %d", origin, st.N, mark.N))
				continue
			}
			// The operator says the store was lost: continue from the
			// marked tree. Consistency is still enforced from its root;
			// the stored checkpoint note comes back at the next cosign.
			w.log.Warn("witness: resuming from the high-water mark; the store was behind it", "origin", origin,
				"store_size", st.N, "mark_size", mark.N)
			ls.state = cosigned{tree: mark}
			ls.resumed = true
		}
	}
	if len(behind) > 0 {
		sort.Strings(behind)
		return fmt.Errorf("%w (%s): its key cosigned more than the store holds, and starting would let it cosign a second root for a size it already cosigned. "+
			"Restore the store from a copy at least as new, or, if it is lost, start with --resume-from-hwm to continue these logs from the high-water mark",
			ErrBehindHighWater, strings.Join(behind, "; "))
	}
	w.hwm = h
	if changed {
		if err := writeHWM(file, h); err != nil {
			return err
		}
		w.stats.hwmWrites.Add(1)
	}
	return nil
}

// raiseHighWater records tree as origin's latest cosigned tree, durably,
// before the cosignature for it is released. It is a no-op without a
// high-water file or when the mark already covers tree. ls.mu must be held.
func (w *Witness) raiseHighWater(origin string, tree tlog.Tree) error {
	if w.opts.HighWaterFile == "" {
		return nil
	}
	w.hwmMu.Lock()
	defer w.hwmMu.Unlock()
	if cur, ok := w.hwm.trees[origin]; ok && cur == tree {
		return nil
	}
	next := hwm{key: w.hwm.key, trees: make(map[string]tlog.Tree, len(w.hwm.trees)+1)}
	for o, t := range w.hwm.trees {
		next.trees[o] = t
	}
	next.trees[origin] = tree
	if err := writeHWM(w.opts.HighWaterFile, next); err != nil {
		return err
	}
	w.stats.hwmWrites.Add(1)
	w.hwm = next
	return nil
}
