package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	itlog "indelible.dev/tlog"
)

// entriesData is entry i of TestEntriesFunc: of varying length, so that
// walking a bundle to the wrong entry shows.
func entriesData(i int64) []byte {
	return fmt.Appendf(nil, "entry %d %s", i, strings.Repeat("x", int(i%53)))
}

// TestEntriesFunc reads entries through EntriesFunc (one pass over the
// store for the full bundles, the published partial bundle from memory)
// in the shapes a listing and a stream ask for: one entry in each of
// scattered bundles (prefix seeks), consecutive bundles (forward seeks),
// both sides of bundle boundaries, repeats, the last published entry in
// the partial bundle, every entry; with full bundles in the memtable, in
// tables and after a restart; and its errors: an index not published or
// out of order (before any call), the callback's error (stops the walk),
// and a full bundle missing from the store.
func TestEntriesFunc(t *testing.T) {
	s, _ := testSigner(t)
	dir := t.TempDir()
	l, err := Open(dir, Options{Signer: s, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	const w = itlog.TileWidth
	const n = 9*w + 37 // nine full bundles and a partial one
	appendTo := func(to int64) {
		t.Helper()
		cp, _ := l.Checkpoint()
		var batch []Entry
		for i := cp.N; i < to; i++ {
			batch = append(batch, Entry{Data: entriesData(i)})
		}
		if _, err := l.AppendEntries(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(4*w + 10) // in commits that straddle bundles
	if l.pdb != nil {
		if err := l.pdb.Flush(); err != nil { // the first bundles in a table
			t.Fatal(err)
		}
	}
	appendTo(7*w - 1)
	appendTo(n)
	if _, _, err := l.WaitSize(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	all := make([]int64, n)
	for i := range all {
		all[i] = int64(i)
	}
	cases := map[string][]int64{
		"every entry":              all,
		"one in scattered bundles": {3, 3*w + 1, 6*w + 200, 9*w + 5},
		"one in every bundle":      {0, w + 1, 2*w + 2, 3*w + 3, 4*w + 4, 5*w + 5, 6*w + 6, 7*w + 7, 8*w + 8, 9*w + 9},
		"bundle boundaries":        {w - 1, w, 2*w - 1, 2 * w, 9*w - 1, 9 * w},
		"repeats":                  {5, 5, 5, w + 44, w + 44, n - 1, n - 1},
		"the last published":       {n - 1},
		"only the partial bundle":  {9 * w, 9*w + 17, n - 1},
		"first and last":           {0, n - 1},
		"last of each full bundle": {w - 1, 2*w - 1, 3*w - 1, 4*w - 1, 5*w - 1, 6*w - 1, 7*w - 1, 8*w - 1, 9*w - 1},
		"first entry only":         {0},
		"none":                     {},
	}
	check := func(l *Log, what string) {
		t.Helper()
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range cases {
				if !yield(k) {
					return
				}
			}
		}) {
			idx := cases[name]
			var got []int
			err := l.EntriesFunc(idx, func(j int, e []byte) error {
				if want := entriesData(idx[j]); string(e) != string(want) {
					return fmt.Errorf("entry %d (j %d) is %q, want %q", idx[j], j, e, want)
				}
				got = append(got, j)
				return nil
			})
			if err != nil {
				t.Fatalf("%s, %s: %v", what, name, err)
			}
			if len(got) != len(idx) {
				t.Fatalf("%s, %s: %d calls, want %d", what, name, len(got), len(idx))
			}
			for k, j := range got {
				if j != k {
					t.Fatalf("%s, %s: call %d was for j %d: not in order", what, name, k, j)
				}
			}
		}
		calls := 0
		f := func(int, []byte) error { calls++; return nil }
		for _, bad := range [][]int64{{0, n}, {-1}, {5, 4}, {n + 1000}} {
			err := l.EntriesFunc(bad, f)
			if err == nil || calls != 0 {
				t.Fatalf("%s: EntriesFunc(%v): %v after %d calls, want an error before any call", what, bad, err, calls)
			}
			if bad[0] != 5 && !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: EntriesFunc(%v): %v, want ErrNotFound", what, bad, err)
			}
		}
		stop := errors.New("stop")
		err := l.EntriesFunc([]int64{1, 2, w + 3, 5 * w, n - 1}, func(j int, _ []byte) error {
			calls++
			if j == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 3 {
			t.Fatalf("%s: the callback's error: %v after %d calls, want stop after 3", what, err, calls)
		}
	}
	check(l, "before a restart")
	l.Close()
	if l, err = Open(dir, Options{Signer: s, Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
	check(l, "after a restart")
	if l.pdb != nil {
		if err := l.pdb.Flush(); err != nil {
			t.Fatal(err)
		}
		check(l, "after a flush")
	}

	// A full bundle missing from the store (a damaged store): ErrNotFound
	// naming it, after the calls for the bundles before it.
	b := l.db.NewBatch(0)
	if err := b.Delete(bundleKey(3)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, idx := range [][]int64{{1, 3*w + 1, 8 * w}, {w, 2 * w, 3 * w, 4 * w}} {
		var seen []int64
		err := l.EntriesFunc(idx, func(j int, _ []byte) error { seen = append(seen, idx[j]); return nil })
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "bundle 3") {
			t.Fatalf("EntriesFunc(%v) without bundle 3: %v", idx, err)
		}
		if len(seen) != 1 && len(seen) != 2 || seen[len(seen)-1] >= 3*w {
			t.Fatalf("EntriesFunc(%v) without bundle 3 called f for %v", idx, seen)
		}
	}
	if _, err := l.Entry(3*w + 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Entry in the missing bundle: %v", err)
	}
}
