package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/labstack/echo/v4"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// The log's routes (c2sp.org/tlog-tiles; README.md lists them).
const (
	routeCheckpoint  = "/checkpoint"
	routeTile        = "/tile/*"
	routeInclusion   = "/v1/proof/inclusion"
	routeConsistency = "/v1/proof/consistency"
	routeAdd         = "/add"
)

// Cache policies. Full tiles and bundles never change. A partial tile at a
// given width never changes either, but it is replaced by wider ones quickly,
// so caches need not keep it long. The checkpoint changes at every commit.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cachePartial    = "public, max-age=60"
	cacheCheckpoint = "no-cache"
)

// Header values shared by every response that uses them (never modified).
var (
	hdrTextPlain   = []string{"text/plain; charset=utf-8"}
	hdrOctetStream = []string{"application/octet-stream"}
	hdrImmutable   = []string{cacheImmutable}
	hdrPartial     = []string{cachePartial}
	hdrNoCache     = []string{cacheCheckpoint}
	hdrGzip        = []string{"gzip"}
	hdrVaryAE      = []string{"Accept-Encoding"}
)

// DefaultCheckpointWait bounds how long POST /add?wait=checkpoint waits for
// a checkpoint covering the entry (Config.CheckpointWait). It is well below
// WriteTimeout, so the client gets a 503 with Retry-After rather than a
// closed connection when the witness quorum is unreachable.
const DefaultCheckpointWait = 30 * time.Second

// errCheckpointWait is why POST /add?wait=checkpoint gave up waiting.
var errCheckpointWait = errors.New("the entry was appended, but no checkpoint covers it yet")

// logHandlers serves one ledger.
type logHandlers struct {
	l         *ledger.Log
	waitLimit time.Duration // of POST /add?wait=checkpoint
}

// mountLog registers the log's routes on s.
func (s *Server) mountLog(l *ledger.Log, rawAppend bool, waitLimit time.Duration) {
	h := &logHandlers{l: l, waitLimit: waitLimit}
	s.route(http.MethodGet, routeCheckpoint, s.guardRead(h.serveCheckpoint))
	s.route(http.MethodGet, routeTile, s.guardRead(h.serveTile))
	s.route(http.MethodGet, routeInclusion, s.guardRead(h.serveInclusion))
	s.route(http.MethodGet, routeConsistency, s.guardRead(h.serveConsistency))
	if rawAppend {
		s.route(http.MethodPost, routeAdd, h.serveAdd)
	}
}

// serveCheckpoint serves the newest published checkpoint (a signed note).
// With witnessing, it is the newest witnessed one, and before any checkpoint
// has met the quorum the answer is 503 with Retry-After (never a checkpoint
// without the cosignatures clients require): tlog-tiles clients treat a 503
// as a transient failure and retry.
func (h *logHandlers) serveCheckpoint(c echo.Context) error {
	_, signed := h.l.Checkpoint()
	if signed == nil {
		return ledger.ErrNotWitnessed
	}
	hdr := c.Response().Header()
	hdr["Content-Type"] = hdrTextPlain
	hdr["Cache-Control"] = hdrNoCache
	c.Response().WriteHeader(http.StatusOK)
	_, err := c.Response().Write(signed)
	return err
}

// serveTile serves a hash tile or an entry bundle at its c2sp.org/tlog-tiles
// path. The path is parsed strictly from the escaped request path, so only
// canonical paths are served: "/tile/../checkpoint", "%2e%2e" or an escaped
// digit are all malformed (404, as for any tile that does not exist).
func (h *logHandlers) serveTile(c echo.Context) error {
	path := strings.TrimPrefix(c.Request().URL.EscapedPath(), "/")
	t, err := itlog.ParseTilePath(path)
	if err != nil {
		return err
	}
	// The tile's bytes are borrowed from the store while they are written.
	err = h.l.ReadTileFunc(t, func(data []byte) error {
		return writeTile(c, t, data)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", itlog.TilePath(t), err)
	}
	return nil
}

// writeTile writes tile or bundle t, whose bytes are data.
func writeTile(c echo.Context, t tlog.Tile, data []byte) error {
	w := c.Response()
	hdr := w.Header()
	hdr["Content-Type"] = hdrOctetStream
	if t.W == itlog.TileWidth {
		hdr["Cache-Control"] = hdrImmutable
	} else {
		hdr["Cache-Control"] = hdrPartial
	}
	if t.L == itlog.EntriesLevel {
		// Bundles are compressible (hash tiles are not): gzip them for clients
		// that accept it, as c2sp.org/tlog-tiles recommends.
		hdr["Vary"] = hdrVaryAE
		if acceptsGzip(c.Request().Header.Get("Accept-Encoding")) {
			return writeGzip(w, data)
		}
	}
	hdr.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(data)
	return err
}

var gzipPool = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeGzip writes data gzip-compressed, with its compressed length.
func writeGzip(w *echo.Response, data []byte) error {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	zw := gzipPool.Get().(*gzip.Writer)
	defer gzipPool.Put(zw)
	zw.Reset(buf)
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	hdr := w.Header()
	hdr["Content-Encoding"] = hdrGzip
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(buf.Bytes())
	return err
}

// acceptsGzip reports whether an Accept-Encoding header value lists gzip
// with a non-zero quality (RFC 9110 section 12.5.3).
func acceptsGzip(ae string) bool {
	for ae != "" {
		var item string
		item, ae, _ = strings.Cut(ae, ",")
		name, params, _ := strings.Cut(item, ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if !ok {
			return true
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(q), 64)
		return err == nil && v > 0
	}
	return false
}

// serveInclusion serves ?index=I&size=S or ?hash=<base64 leaf hash>&size=S.
func (h *logHandlers) serveInclusion(c echo.Context) error {
	q, err := queryParams(c, "index", "hash", "size")
	if err != nil {
		return err
	}
	size, err := sizeParam(q, "size")
	if err != nil {
		return err
	}
	var index int64
	var p tlog.RecordProof
	switch {
	case q.Has("index") && q.Has("hash"):
		return fmt.Errorf("%w: give either index or hash, not both", errBadRequest)
	case q.Has("hash"):
		leaf, err := itlog.ParseHash(q.Get("hash"))
		if err != nil {
			return fmt.Errorf("%w: parameter hash: %v", errBadRequest, err)
		}
		index, p, err = h.processInclusionByHash(leaf, size)
		if err != nil {
			return err
		}
	default:
		index, err = sizeParam(q, "index")
		if err != nil {
			return fmt.Errorf("%w (or give hash)", err)
		}
		p, err = h.processInclusion(index, size)
		if err != nil {
			return err
		}
	}
	return writeProof(c, "index", index, "tree_size", size, p)
}

// processInclusion proves entry index in the tree of size n.
func (h *logHandlers) processInclusion(index, n int64) (tlog.RecordProof, error) {
	proof, err := h.l.InclusionProof(index, n)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of index %d in size %d: %w", index, n, err)
	}
	return proof, nil
}

// processInclusionByHash finds the first entry with leaf hash leaf and proves
// it in the tree of size n.
func (h *logHandlers) processInclusionByHash(leaf tlog.Hash, n int64) (int64, tlog.RecordProof, error) {
	index, proof, err := h.l.InclusionProofByHash(leaf, n)
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, nil, fmt.Errorf("no entry with leaf hash %s in the tree of size %d: %w", leaf, n, err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("inclusion proof of leaf hash %s in size %d: %w", leaf, n, err)
	}
	return index, proof, nil
}

// serveConsistency serves ?from=A&to=B.
func (h *logHandlers) serveConsistency(c echo.Context) error {
	q, err := queryParams(c, "from", "to")
	if err != nil {
		return err
	}
	from, err := sizeParam(q, "from")
	if err != nil {
		return err
	}
	to, err := sizeParam(q, "to")
	if err != nil {
		return err
	}
	p, err := h.processConsistency(from, to)
	if err != nil {
		return err
	}
	return writeProof(c, "from", from, "to", to, p)
}

// processConsistency proves that the tree of size from is a prefix of the
// tree of size to.
func (h *logHandlers) processConsistency(from, to int64) (tlog.TreeProof, error) {
	if from > to {
		return nil, fmt.Errorf("%w: from (%d) is larger than to (%d)", errBadRequest, from, to)
	}
	proof, err := h.l.ConsistencyProof(from, to)
	if err != nil {
		return nil, fmt.Errorf("consistency proof from size %d to %d: %w", from, to, err)
	}
	return proof, nil
}

// Header values of proof responses.
var hdrJSON = []string{echo.MIMEApplicationJSON}

// writeProof writes a proof's JSON body, {"<k1>":v1,"<k2>":v2,"hashes":[...]}
// and a newline, exactly as encoding/json writes client.InclusionProof and
// client.ConsistencyProof (TestProofJSON), but without reflection or one
// string per hash: encoding/json was the largest cost of a proof after the
// proof itself (BENCHMARKS.md, issue 13). Proofs never change: immutable.
func writeProof(c echo.Context, k1 string, v1 int64, k2 string, v2 int64, hashes []tlog.Hash) error {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	buf.Write(appendProofJSON(buf.AvailableBuffer(), k1, v1, k2, v2, hashes))
	w := c.Response()
	hdr := w.Header()
	hdr["Content-Type"] = hdrJSON
	hdr["Cache-Control"] = hdrImmutable
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(buf.Bytes())
	return err
}

// appendProofJSON appends the body writeProof writes to b.
func appendProofJSON(b []byte, k1 string, v1 int64, k2 string, v2 int64, hashes []tlog.Hash) []byte {
	b = append(b, `{"`...)
	b = append(b, k1...)
	b = append(b, `":`...)
	b = strconv.AppendInt(b, v1, 10)
	b = append(b, `,"`...)
	b = append(b, k2...)
	b = append(b, `":`...)
	b = strconv.AppendInt(b, v2, 10)
	b = append(b, `,"hashes":[`...)
	for i, h := range hashes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, h[:])
		b = append(b, '"')
	}
	return append(b, "]}\n"...)
}

// queryParams parses the query string and rejects parameters other than
// allowed, and repeated ones, so that typos are reported rather than ignored.
func queryParams(c echo.Context, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed query string: %v", errBadRequest, err)
	}
	for k, v := range q {
		known := false
		for _, a := range allowed {
			known = known || k == a
		}
		if !known {
			return nil, fmt.Errorf("%w: unknown parameter %q (allowed: %s)", errBadRequest, k, strings.Join(allowed, ", "))
		}
		if len(v) > 1 {
			return nil, fmt.Errorf("%w: parameter %s given %d times", errBadRequest, k, len(v))
		}
	}
	return q, nil
}

// sizeParam parses the required decimal parameter name (a size or index: no
// sign, no leading zeros).
func sizeParam(q url.Values, name string) (int64, error) {
	if !q.Has(name) {
		return 0, fmt.Errorf("%w: missing parameter %s", errBadRequest, name)
	}
	v, err := itlog.ParseSize(q.Get(name))
	if err != nil {
		return 0, fmt.Errorf("%w: parameter %s: %v", errBadRequest, name, err)
	}
	return v, nil
}

// entryBufPool recycles POST /add body buffers. A buffer goes back only once
// the ledger is done with the entry (see serveAdd).
var entryBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// serveAdd appends the request body as one entry (raw mode) and replies with
// its index in decimal and a newline, once the entry is durable. With
// ?wait=checkpoint it replies once a published checkpoint covers the entry.
func (h *logHandlers) serveAdd(c echo.Context) error {
	r := c.Request()
	wait := false
	if r.URL.RawQuery != "" {
		q, err := queryParams(c, "wait")
		if err != nil {
			return err
		}
		switch w := q.Get("wait"); w {
		case "":
		case "checkpoint":
			wait = true
		default:
			return fmt.Errorf("%w: parameter wait: %q is not \"checkpoint\"", errBadRequest, w)
		}
	}
	if r.ContentLength > itlog.MaxEntrySize {
		return fmt.Errorf("%w: entry of %d bytes, at most %d", errTooLarge, r.ContentLength, itlog.MaxEntrySize)
	}
	bp := entryBufPool.Get().(*[]byte)
	data, err := readEntry(r.Body, (*bp)[:0], r.ContentLength)
	if err != nil {
		entryBufPool.Put(bp)
		return err
	}
	ctx := r.Context()
	index, err := h.processAdd(ctx, data, wait)
	// The ledger copies the entry when it sequences it; Append returns early
	// only when ctx is done, with the entry possibly still queued. Recycle
	// the buffer only when the entry is certainly no longer referenced.
	if ctx.Err() == nil {
		*bp = data[:0]
		entryBufPool.Put(bp)
	}
	if err != nil {
		return err
	}
	var out [24]byte
	reply := append(strconv.AppendInt(out[:0], index, 10), '\n')
	w := c.Response()
	// No header is set: touching the header map makes net/http clone it
	// for every response. net/http derives the same Content-Type from the
	// digits ("text/plain; charset=utf-8") and the Content-Length
	// (TestAddResponseHeaders).
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(reply)
	return err
}

// processAdd appends data and returns its index once durable, or once a
// published checkpoint covers it if wait is set.
func (h *logHandlers) processAdd(ctx context.Context, data []byte, wait bool) (int64, error) {
	if len(data) == 0 {
		return 0, fmt.Errorf("%w: empty entry (the request body is the entry)", errBadRequest)
	}
	index, err := h.l.Append(ctx, data)
	if err != nil {
		return 0, err
	}
	if wait {
		wctx, cancel := context.WithTimeout(ctx, h.waitLimit)
		_, _, err := h.l.WaitSize(wctx, index+1)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// The entry is durable; only its checkpoint is late (a witness
			// quorum out of reach). 503: the client may fetch a proof later.
			return 0, fmt.Errorf("%w: entry %d: %w", errCheckpointWait, index, ledger.ErrNotWitnessed)
		}
		if err != nil {
			return 0, fmt.Errorf("entry %d is durable, but waiting for its checkpoint: %w", index, err)
		}
	}
	return index, nil
}

// readEntry reads a request body of at most tlog.MaxEntrySize bytes into buf
// (reusing its capacity) and returns it. declared is the Content-Length, or
// -1 if unknown.
func readEntry(body io.Reader, buf []byte, declared int64) ([]byte, error) {
	if declared >= 0 {
		if int64(cap(buf)) < declared {
			buf = make([]byte, 0, declared)
		}
		buf = buf[:declared]
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, fmt.Errorf("%w: reading body: %v", errBadRequest, err)
		}
		return buf, nil
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > itlog.MaxEntrySize {
			return nil, fmt.Errorf("%w: entry larger than %d bytes", errTooLarge, itlog.MaxEntrySize)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, fmt.Errorf("%w: entry larger than %d bytes", errTooLarge, itlog.MaxEntrySize)
			}
			return nil, fmt.Errorf("%w: reading body: %v", errBadRequest, err)
		}
	}
}
