// Package audittest builds logs for testing auditors: a c2sp.org/tlog-tiles
// log written to a directory by an implementation independent of Indelible's
// (golang.org/x/mod/sumdb/tlog's tiles, bundles encoded here), served by a
// plain http.FileServer; and a tampering reverse proxy that alters what any
// log serves.
package audittest

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
)

// Log is a tlog-tiles log in a directory, written with x/mod's tile code.
type Log struct {
	Dir    string
	Origin string
	// VKey is the log's verifier key; Signer its signer.
	VKey   string
	Signer note.Signer
	// WitnessVKeys are cosignature/v1 verifier keys of the witnesses that
	// cosign every checkpoint; WitnessSigners their signers.
	WitnessVKeys   []string
	WitnessSigners []note.Signer

	tree tlogtest.Tree
	// Checkpoints holds the signed checkpoint of every size Grow produced.
	Checkpoints map[int64][]byte
}

// NewLog creates an empty log (size 0 and its checkpoint written) in a
// temporary directory, with witnesses cosigners.
func NewLog(t testing.TB, origin string, witnesses int) *Log {
	t.Helper()
	k := tlogtest.NewKey(t, origin)
	l := &Log{Dir: t.TempDir(), Origin: origin, VKey: k.VKey, Signer: k.Signer, Checkpoints: map[int64][]byte{}}
	for i := 0; i < witnesses; i++ {
		ws, cv := tlogtest.NewWitnessKey(t, fmt.Sprintf("witness%d.example", i))
		l.WitnessSigners = append(l.WitnessSigners, ws)
		l.WitnessVKeys = append(l.WitnessVKeys, cv)
	}
	l.Grow(t, 0)
	return l
}

// Entry returns the bytes of entry i as Grow writes them: varying lengths,
// so bundles are not uniform.
func Entry(i int64) []byte {
	return []byte(fmt.Sprintf("entry %d %s", i, strings.Repeat("x", int(i%37))))
}

// Size returns the log's size.
func (l *Log) Size() int64 { return l.tree.Size() }

// Grow appends entries up to size n, writes every tile and bundle that
// changed (keeping the older partial ones, as logs must), and publishes a
// checkpoint of size n signed by the log and cosigned by every witness.
func (l *Log) Grow(t testing.TB, n int64) {
	t.Helper()
	old := l.Size()
	if n < old {
		t.Fatalf("audittest: Grow(%d) below size %d", n, old)
	}
	for i := old; i < n; i++ {
		l.tree.Add(Entry(i))
	}
	for _, tile := range tlog.NewTiles(tlogtest.TileHeight, old, n) {
		l.write(t, tlogtest.TilePath(tile), l.tree.Tile(tile))
	}
	if n > old {
		for k := old / 256; k <= (n-1)/256; k++ {
			b := tlog.Tile{H: tlogtest.TileHeight, L: tlogtest.EntriesLevel, N: k, W: int(min(n-k*256, 256))}
			l.write(t, tlogtest.TilePath(b), l.tree.Tile(b))
		}
	}
	msg := l.Sign(t, n, l.tree.Root(n))
	l.Checkpoints[n] = msg
	l.write(t, "checkpoint", msg)
}

// Sign returns a checkpoint of size n and root signed by the log key and
// cosigned by every witness, whatever the log holds: a test makes forks
// with it.
func (l *Log) Sign(t testing.TB, n int64, root tlog.Hash) []byte {
	t.Helper()
	return tlogtest.SignCheckpoint(l.Origin, n, root, append([]note.Signer{l.Signer}, l.WitnessSigners...)...)
}

// Root returns the root hash of the tree of size n <= Size().
func (l *Log) Root(t testing.TB, n int64) tlog.Hash { return l.tree.Root(n) }

func (l *Log) write(t testing.TB, path string, data []byte) {
	p := filepath.Join(l.Dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Serve serves the log's directory with http.FileServer on a loopback
// address and returns the base URL. The server stops at the end of the test.
func (l *Log) Serve(t testing.TB) string {
	srv := httptest.NewServer(http.FileServer(http.Dir(l.Dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Mutator alters one response of a log: it gets the request path (without
// the leading slash and query), the status and the body, and returns the
// status and body to serve instead.
type Mutator func(path string, status int, body []byte) (int, []byte)

// Proxy is a reverse proxy in front of a log that applies a Mutator.
type Proxy struct {
	URL string
	mu  sync.Mutex
	m   Mutator
}

// NewProxy starts a loopback reverse proxy to the log at upstream.
func NewProxy(t testing.TB, upstream string) *Proxy {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		// Ask the upstream for identity encoding so mutators see plain bytes.
		r.Out.Header.Set("Accept-Encoding", "identity")
	}}
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		m := p.m
		p.mu.Unlock()
		if m == nil {
			return nil
		}
		body, err := readBody(resp)
		if err != nil {
			return err
		}
		status, body := m(strings.TrimPrefix(resp.Request.URL.Path, "/"), resp.StatusCode, body)
		resp.StatusCode = status
		resp.Status = strconv.Itoa(status) + " " + http.StatusText(status)
		resp.Body = ioNopCloser(body)
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		resp.Header.Del("Content-Encoding")
		return nil
	}
	// Requests cancelled by a client that stopped at a failure are expected.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Set installs m (nil: pass everything through).
func (p *Proxy) Set(m Mutator) {
	p.mu.Lock()
	p.m = m
	p.mu.Unlock()
}

// FlipByte returns a Mutator that flips one bit of byte off (from the end if
// negative) of the response at path.
func FlipByte(path string, off int) Mutator {
	return func(p string, status int, body []byte) (int, []byte) {
		if p != path || len(body) == 0 {
			return status, body
		}
		b := append([]byte(nil), body...)
		if off < 0 {
			off += len(b)
		}
		b[off] ^= 0x01
		return status, b
	}
}

// Replace returns a Mutator serving body at path.
func Replace(path string, body []byte) Mutator {
	return func(p string, status int, b []byte) (int, []byte) {
		if p == path {
			return http.StatusOK, body
		}
		return status, b
	}
}

// NotFound returns a Mutator answering 404 at path.
func NotFound(path string) Mutator {
	return func(p string, status int, b []byte) (int, []byte) {
		if p == path {
			return http.StatusNotFound, []byte("not found\n")
		}
		return status, b
	}
}

func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func ioNopCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
