package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"indelible.dev/api"
	"indelible.dev/client"
	"indelible.dev/internal/pgtest"
)

// copyFile copies a key (or its high-water mark) to a new data directory.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeStorePostgres: serve --store postgres://... (raw mode) keeps the
// log in PostgreSQL, not in the data directory: a node started on a new data
// directory holding only the key (and its high-water mark) and
// $INDELIBLE_STORE goes on with the same log.
func TestServeStorePostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dir, "--store", dsn)
	for i := range 3 {
		if idx := httpAdd(t, p.url, []byte{'e', byte('0' + i)}); idx != int64(i) {
			t.Fatalf("index %d, want %d", idx, i)
		}
	}
	p.stop(t)
	if _, err := os.Stat(filepath.Join(dir, ledgerDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a pebble store in the data directory: %v", err)
	}
	// A new node: a fresh data directory with the key only; the store from
	// the environment.
	dir2 := filepath.Join(t.TempDir(), "data2")
	copyFile(t, filepath.Join(dir, logKeyFile), filepath.Join(dir2, logKeyFile))
	copyFile(t, filepath.Join(dir, logKeyFile)+hwmSuffix, filepath.Join(dir2, logKeyFile)+hwmSuffix)
	t.Setenv(envStoreVar, dsn)
	p2 := startServe(t, dir2)
	if p2.vkey != p.vkey {
		t.Fatalf("verifier key %q, want %q", p2.vkey, p.vkey)
	}
	_, body := httpGet(t, p2.url+"/checkpoint")
	if lines := strings.Split(string(body), "\n"); len(lines) < 2 || lines[1] != "3" {
		t.Fatalf("restarted node's checkpoint:\n%s", body)
	}
	if idx := httpAdd(t, p2.url, []byte("e3")); idx != 3 {
		t.Fatalf("index %d after the restart, want 3", idx)
	}
	p2.stop(t)
}

// TestServeStorePostgresEvents: events mode on PostgreSQL: events, tokens
// and queries survive a restart.
func TestServeStorePostgresEvents(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := filepath.Join(t.TempDir(), "data")
	p := startEvents(t, dir, "--store", dsn)
	c := p.client(t)
	res, err := c.Append(t.Context(), []client.Event{{Action: "pg.one", Actor: &client.Actor{ID: "alice"}}, {Action: "pg.two", Actor: &client.Actor{ID: "bob"}}}, false)
	if err != nil || len(res) != 2 {
		t.Fatalf("append: %+v %v", res, err)
	}
	p.stop(t)
	p2 := startEvents(t, dir, "--store", dsn)
	recs := queryJSON(t, p2.env(), "--actor", "bob")
	if len(recs) != 1 || recs[0].Index != res[1].Index {
		b, _ := json.Marshal(recs)
		t.Fatalf("query after the restart: %s", b)
	}
	p2.stop(t)
}

// TestServeStoreBadURL: --store that is not a PostgreSQL URL is refused, and
// the refusal does not echo a password.
func TestServeStoreBadURL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	_, errOut, code := run(t, nil, "serve", "--mode", "raw", "--data", dir, "--listen", "127.0.0.1:0", "--store", "mysql://u:hunter2@h/db")
	if code == 0 || !strings.Contains(errOut, "postgres://") || strings.Contains(errOut, "hunter2") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestClusterSingleNode: GET /v1/cluster on a node run without --lease
// (pebble here): the only node, active, epoch 0, at the address it listens
// on, with its published size.
func TestClusterSingleNode(t *testing.T) {
	p := startServe(t, filepath.Join(t.TempDir(), "data"))
	for i := range 2 {
		httpAdd(t, p.url, []byte{'s', byte('0' + i)})
	}
	var st api.Cluster
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body := httpGet(t, p.url+"/v1/cluster")
		st = api.Cluster{}
		if err := json.Unmarshal(body, &st); err != nil || code != http.StatusOK {
			t.Fatalf("GET /v1/cluster = %d %q: %v", code, body, err)
		}
		if st.Size == 2 || time.Now().After(deadline) {
			break
		}
	}
	if st.Role != "active" || st.Epoch != 0 || !strings.HasSuffix(st.Node, ":"+p.url[strings.LastIndexByte(p.url, ':')+1:]) ||
		st.Active.Node != st.Node || st.Active.URL != p.url || st.Size != 2 {
		t.Fatalf("GET /v1/cluster = %+v; want the only node, active, epoch 0, at %s, size 2", st, p.url)
	}
}
