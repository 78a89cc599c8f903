package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/client"
	"indelible.dev/internal/pgtest"
	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/pebblekv"
	"indelible.dev/receipt"
	itlog "indelible.dev/tlog"
)

// treeFiles returns the SHA-256, mode and modification time of every file
// under dir, by relative path.
func treeFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel] = fmt.Sprintf("%x %v", sha256.Sum256(b), fi.Mode())
		if d.Name() != "LOCK" { // pebble's lock file: locking it touches it
			m[rel] += fmt.Sprintf(" %v", fi.ModTime().UnixNano())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// servedCheckpoint fetches and parses the server's /checkpoint.
func servedCheckpoint(t *testing.T, url string) (itlog.Checkpoint, []byte) {
	t.Helper()
	code, b := httpGet(t, url+"/checkpoint")
	if code != http.StatusOK {
		t.Fatalf("GET /checkpoint: %d %s", code, b)
	}
	text, _, _ := itlog.SplitNote(b)
	cp, err := itlog.ParseCheckpoint(string(text))
	if err != nil {
		t.Fatal(err)
	}
	return cp, b
}

// TestMigrate moves a single-node store (events, an erasure, tokens) into
// PostgreSQL with the real binary, then serves it from PostgreSQL: the
// source is untouched, every receipt handed out before the move verifies
// (receipt.Verify) and its checkpoint is consistent with the one the new
// node serves, the erasure holds, and a token made before works. A second
// migrate into the same database, a bad URL and a missing source are
// refused with a message naming the problem.
func TestMigrate(t *testing.T) {
	dsn := pgtest.DSN(t)
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	p := startEvents(t, dir)
	c := p.client(t)
	ctx := context.Background()
	var nd strings.Builder
	for k := range 300 {
		fmt.Fprintf(&nd, `{"action":"migrate.test","actor":{"id":"user-%d"},"resource":{"id":"doc-%d"}}`+"\n", k%7, k)
	}
	res, err := c.AppendNDJSON(ctx, []byte(nd.String()), true)
	if err != nil {
		t.Fatal(err)
	}
	erased := res[10].Index
	mustRun(t, p.env(), "erase", fmt.Sprint(erased), "--reason", "migrate test")
	tok, err := c.CreateToken(ctx, "migrate-bot", []string{"append", "read"})
	if err != nil {
		t.Fatal(err)
	}
	receipts := map[int64][]byte{}
	for _, r := range []client.Appended{res[0], res[11], res[255], res[256], res[299]} {
		b, err := c.Receipt(ctx, r.Index)
		if err != nil {
			t.Fatal(err)
		}
		receipts[r.Index] = b
	}
	before, _ := servedCheckpoint(t, p.url)
	// The server still has the store open: refused, nothing read.
	if _, errOut, code := run(t, nil, "migrate", "--data", dir, "--to", dsn); code != exitTrouble || !strings.Contains(errOut, "stop it first") {
		t.Errorf("migrate while the server runs: exit %d, %q", code, errOut)
	}
	p.stop(t)

	src := treeFiles(t, dir)
	// Refusals first: they must leave the database empty.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "mysql://u@127.0.0.1/x"}, "want a postgres:// or postgresql:// URL"},
		{[]string{}, "--to is required"},
		{[]string{"--to", "postgres://u:sekrit@127.0.0.1:1/x?connect_timeout=2"}, "opening the target database"},
	} {
		_, errOut, code := run(t, nil, append([]string{"migrate", "--data", dir}, c.args...)...)
		if code != exitTrouble || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "sekrit") {
			t.Errorf("migrate %q: exit %d, stderr %q: want exit 2 and %q (and no password)", c.args, code, errOut, c.want)
		}
	}
	if _, errOut, code := run(t, nil, "migrate", "--data", filepath.Join(root, "nothing"), "--to", dsn); code != exitTrouble || !strings.Contains(errOut, "no store to migrate") {
		t.Errorf("migrate from a missing directory: exit %d, %q", code, errOut)
	}

	out := mustRun(t, nil, "migrate", "--data", dir, "--to", dsn)
	for _, want := range []string{"source: ", "copied ", "verified ", "checking the tree root", "migrated: "} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, out)
		}
	}
	if after := treeFiles(t, dir); fmt.Sprint(after) != fmt.Sprint(src) {
		t.Errorf("the source directory changed:\nbefore %v\nafter  %v", src, after)
	}
	if _, errOut, code := run(t, nil, "migrate", "--data", dir, "--to", dsn); code == 0 || !strings.Contains(errOut, "already holds a log") {
		t.Errorf("second migrate into the same database: exit %d, %q", code, errOut)
	}

	// The log, served from PostgreSQL by a node with a fresh data directory
	// and the same keys.
	pg := startEvents2(t, filepath.Join(root, "node"), "--store", dsn,
		"--key", filepath.Join(dir, logKeyFile), "--master-key", dir+".master.key")
	now, nowNote := servedCheckpoint(t, pg.url)
	if now.N < before.N {
		t.Fatalf("the PostgreSQL node serves size %d, the single node had %d", now.N, before.N)
	}
	vkey := strings.TrimSpace(readFile(t, filepath.Join(dir, logPubFile)))
	policy, err := receipt.NewPolicy(vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := policy.Open(nowNote); err != nil {
		t.Fatalf("the PostgreSQL node's checkpoint: %v", err)
	}
	pc, err := client.New(pg.url, "", client.WithOptions(client.Options{Token: p.token}))
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range receipts {
		v, err := receipt.Verify(b, policy)
		if err != nil {
			t.Fatalf("receipt of event %d issued before the move: %v", i, err)
		}
		// Its checkpoint is in the history the new node serves.
		proof, err := pc.ConsistencyProof(ctx, v.Checkpoint.N, now.N)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(proof, now.N, now.Hash, v.Checkpoint.N, v.Checkpoint.Hash); err != nil {
			t.Fatalf("receipt %d's checkpoint (size %d) is not consistent with the served one (size %d): %v", i, v.Checkpoint.N, now.N, err)
		}
		// And the new node hands out a receipt for it that verifies.
		nb, err := pc.Receipt(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if nv, err := receipt.Verify(nb, policy); err != nil || nv.Commitment != v.Commitment {
			t.Fatalf("new receipt of event %d: %v (commitment %x, was %x)", i, err, nv.Commitment, v.Commitment)
		}
	}
	if code, b := httpDo(t, http.MethodGet, fmt.Sprintf("%s/v1/events/%d", pg.url, erased), p.token); code != http.StatusGone || !strings.Contains(string(b), "migrate test") {
		t.Errorf("the erased event on the PostgreSQL node: %d %s", code, b)
	}
	bot, err := client.New(pg.url, "", client.WithOptions(client.Options{Token: tok.Secret}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := bot.Append(ctx, []client.Event{{Action: "after.migrate"}}, true)
	if err != nil || len(got) != 1 || got[0].Index <= res[299].Index {
		t.Fatalf("append with a token made before the move: %v %v", got, err)
	}
	if r, err := bot.Event(ctx, res[42].Index); err != nil || !strings.Contains(string(r.EventBytes), "doc-42") {
		t.Fatalf("event 42 read on the PostgreSQL node: %v %s", err, r.EventBytes)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMigrateBench measures indelible migrate on a store of
// $INDELIBLE_MIGRATE_BENCH events (BENCHMARKS.md, "indelible migrate"):
// the events are appended through the real server in batches of 1,000,
// then the stopped store is migrated into a new database of the test's
// PostgreSQL, and the rate and the process's CPU time are logged. With
// INDELIBLE_PG_SYNC_STANDBY=1 the database has a synchronous standby
// (benchDSN).
func TestMigrateBench(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("INDELIBLE_MIGRATE_BENCH"))
	if n <= 0 {
		t.Skip("set INDELIBLE_MIGRATE_BENCH=200000 to run")
	}
	dsn := benchDSN(t)
	dir := filepath.Join(t.TempDir(), "data")
	p := startEvents(t, dir)
	c := p.client(t)
	ctx := context.Background()
	start := time.Now()
	for done := 0; done < n; done += 1000 {
		var nd strings.Builder
		for k := done; k < min(done+1000, n); k++ {
			fmt.Fprintf(&nd, `{"id":"bench-%d","action":"migrate.bench","actor":{"id":"user-%d"},"resource":{"id":"doc-%d","type":"document"},"outcome":"success","source":"bench"}`+"\n", k, k%97, k)
		}
		if _, err := c.AppendNDJSON(ctx, []byte(nd.String()), false); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("appended %d events in %v", n, time.Since(start).Round(time.Millisecond))
	p.stop(t)
	cmd := exec.Command(binPath, "migrate", "--data", dir, "--to", dsn)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start = time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	wall := time.Since(start)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	t.Logf("migrate: %v wall, %v CPU (the migrate process only), %.0f events/s\n%s", wall.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(n)/wall.Seconds(), out.String())
}

// TestVerifyCopy: the copy's check finds a key missing from the target, a
// key the source lacks, and a different value, wherever they fall relative
// to the chunks it reads (real pebble stores on both sides).
func TestVerifyCopy(t *testing.T) {
	defer func(b int) { migrateBatchBytes = b }(migrateBatchBytes)
	migrateBatchBytes = 100 // a chunk every few keys
	open := func() kv.Store {
		s, err := pebblekv.Open(t.TempDir(), pebblekv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	src := open()
	b := src.NewBatch(0)
	for i := range 200 {
		b.Set(fmt.Appendf(nil, "k%04d", i), fmt.Appendf(nil, "value %d", i))
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, c := range []struct {
		name   string
		change func(b kv.Batch)
		want   string
	}{
		{"equal", func(kv.Batch) {}, ""},
		{"missing first", func(b kv.Batch) { b.Delete([]byte("k0000")) }, "6b30303030"}, // k0000, in hex
		{"missing middle", func(b kv.Batch) { b.Delete([]byte("k0100")) }, "6b30313030"},
		{"missing last", func(b kv.Batch) { b.Delete([]byte("k0199")) }, "6b30313939 of the source is missing"},
		{"extra before", func(b kv.Batch) { b.Set([]byte("a"), nil) }, "holds key 61"},
		{"extra between", func(b kv.Batch) { b.Set([]byte("k0100x"), nil) }, "holds key"},
		{"extra after", func(b kv.Batch) { b.Set([]byte("z"), nil) }, "where the source holds nothing"},
		{"value", func(b kv.Batch) { b.Set([]byte("k0150"), []byte("other")) }, "value differs"},
	} {
		dst := open()
		if _, err := copyStore(context.Background(), src, dst, io.Discard); err != nil {
			t.Fatal(err)
		}
		b := dst.NewBatch(0)
		c.change(b)
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		b.Close()
		err := verifyCopy(src, dst)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: verifyCopy = %v, want %q", c.name, err, c.want)
		}
	}
}
