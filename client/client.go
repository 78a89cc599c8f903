// Package client is the library applications write audit events to an
// Indelible server with, and the Go client for any c2sp.org/tlog-tiles log
// and for Indelible's proof endpoints.
//
// Writing events: New(url, token, options...), then Log (queued, batched),
// LogSync (durable, with the index; Logged.Receipt waits for a checkpoint),
// Flush, and Close, which returns once everything queued is durable or
// reports what is not (*UndeliveredError). Ids are filled in before the
// first attempt, so retries never store an event twice; a refused event is a
// *RefusedError; NewSlogHandler writes log/slog records as events. See
// docs/client.md.
//
// Reading a log, the client fetches the checkpoint, hash tiles, entry
// bundles and consistency proofs over HTTP, retrying with back-off on 429,
// 502, 503, 504 and transport errors (never on a 500: see Retryable), and mapping 404 to an error that matches
// ErrNotExist (and fs.ErrNotExist).
//
// Reading, it verifies nothing: callers (the auditor, the witness, the CLI) check
// signatures, lengths and hashes. It does enforce size limits on everything
// it reads, so a hostile server cannot make it buffer without bound.
//
//	c, err := client.New("http://127.0.0.1:8080", "")
//	note, err := c.Checkpoint(ctx)
//	tile, err := c.Tile(ctx, tlog.Tile{H: 8, L: 0, N: 0, W: 256}, nil)
package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// Limits on what the client reads.
const (
	// MaxHashTileSize is the size of a full hash tile: 256 hashes.
	MaxHashTileSize = itlog.TileWidth * tlog.HashSize
	// MaxBundleSize is the largest possible entry bundle: 256 entries of the
	// largest size, each with its 2-byte length.
	MaxBundleSize = itlog.TileWidth * (2 + itlog.MaxEntrySize)
	// MaxProofSize bounds a JSON proof response.
	MaxProofSize = 64 << 10
	// MaxErrorBody bounds how much of an error response is kept for the
	// error message.
	MaxErrorBody = 512
)

// Defaults for Options.
const (
	// DefaultRetries is how many times a request is retried after a
	// failure Retryable accepts, before the error is returned.
	DefaultRetries = 5
	// DefaultBackoff is the first retry delay; it doubles at each retry.
	DefaultBackoff = 200 * time.Millisecond
	// MaxBackoff caps one retry delay, including a server's Retry-After.
	MaxBackoff = 10 * time.Second
	// DefaultTimeout bounds one HTTP request (not the retries).
	DefaultTimeout = 30 * time.Second
	// DefaultParallelism is the number of concurrent requests a caller
	// fetching many tiles (the auditor) makes when not told otherwise.
	DefaultParallelism = 16
)

// ErrNotExist matches (errors.Is) the error returned when the server answers
// 404: the tile, bundle, checkpoint or endpoint does not exist. It is
// fs.ErrNotExist, so either can be tested.
var ErrNotExist = fs.ErrNotExist

// ErrTooLarge matches (errors.Is) the error returned when a response body is
// longer than the limit for what was fetched (a hash tile longer than 8 KiB,
// say): the server sent something that cannot be what was asked for.
var ErrTooLarge = errors.New("response body too large")

// StatusError is returned for an HTTP response with an unexpected status,
// after any retries. A 404 is a StatusError that also matches ErrNotExist.
type StatusError struct {
	Method string
	URL    string
	Status int
	Body   string // the first MaxErrorBody bytes of the response body
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.URL, e.Status)
	if b := strings.TrimSpace(e.Body); b != "" {
		msg += ": " + b
	}
	return msg
}

// Is makes a 404 StatusError match ErrNotExist.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotExist && e.Status == http.StatusNotFound
}

// Options configure New. The zero value of each field has a documented default.
type Options struct {
	// HTTPClient performs the requests. Default: a client with a transport
	// tuned for many parallel requests to one host and DefaultTimeout.
	HTTPClient *http.Client
	// Retries is the number of retries after a retryable failure. Default
	// DefaultRetries; negative means none.
	Retries int
	// Backoff is the first retry delay. Default DefaultBackoff.
	Backoff time.Duration
	// UserAgent is sent with every request. Default "indelible-client".
	UserAgent string
	// DisableCompression stops the default client from asking for gzip
	// (c2sp.org/tlog-tiles says clients SHOULD accept it; on loopback or a
	// fast link, compressing bundles costs more CPU than it saves). It has
	// no effect with HTTPClient set.
	DisableCompression bool
	// Token, if set, is sent as "Authorization: Bearer <token>" with every
	// request to the log (never with Post, which goes to other services).
	Token string
	// RootCAs, if set, are the only certificate authorities trusted for
	// HTTPS (a private CA: see LoadCA); nil means the system's roots. No
	// effect with HTTPClient set (use NewTransport for its transport).
	RootCAs *x509.CertPool
}

// Client fetches from one log. It is safe for concurrent use.
type Client struct {
	base    string // URL prefix without a trailing slash
	hc      *http.Client
	retries int
	backoff time.Duration
	ua      string
	token   string

	w *writer // the writer of Log and LogSync, started by the first

	pinPath string // WithPin
	policy  itlog.Policy
	pinMu   sync.Mutex
}

// New returns a client for the log whose tlog-tiles URL prefix is base
// (e.g. "https://log.example.com" or "http://127.0.0.1:8080/prefix"),
// sending token (if not empty) as "Authorization: Bearer <token>" with every
// request to the log.
func New(base, token string, options ...Option) (*Client, error) {
	s := settings{batchSize: DefaultBatchSize, batchDelay: DefaultBatchDelay, queueSize: DefaultQueueSize,
		blockTimeout: DefaultBlockTimeout, maxElapsed: DefaultMaxElapsed}
	for _, o := range options {
		o(&s)
	}
	opts := s.Options
	if token != "" {
		opts.Token = token
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: log URL %q is not an http(s) URL", base)
	}
	c := &Client{base: strings.TrimSuffix(base, "/"), hc: opts.HTTPClient, retries: opts.Retries,
		backoff: opts.Backoff, ua: opts.UserAgent, token: opts.Token}
	if c.hc == nil {
		t := NewTransport(opts.RootCAs)
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 256
		t.DisableCompression = opts.DisableCompression
		c.hc = &http.Client{Transport: t, Timeout: DefaultTimeout}
	}
	if c.retries == 0 {
		c.retries = DefaultRetries
	} else if c.retries < 0 {
		c.retries = 0
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	if c.ua == "" {
		c.ua = "indelible-client"
	}
	if c.w, err = newWriter(c, s); err != nil {
		return nil, err
	}
	c.pinPath, c.policy = s.pinPath, s.policy
	return c, nil
}

// Checkpoint fetches the signed checkpoint note at <prefix>/checkpoint,
// verbatim. It does not verify it.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.Get(ctx, "checkpoint", nil, itlog.MaxCheckpointSize)
}

// Tile fetches hash tile t (0 <= t.L) or entry bundle t (t.L ==
// tlog.EntriesLevel), full or partial as t.W says, appending the body to
// buf[:0] (pass a buffer to reuse it; nil allocates). It does not check the
// contents: a hash tile should be exactly t.W*32 bytes and a bundle should
// hold exactly t.W entries, which the caller verifies.
func (c *Client) Tile(ctx context.Context, t tlog.Tile, buf []byte) ([]byte, error) {
	limit := int64(MaxHashTileSize)
	if t.L == itlog.EntriesLevel {
		limit = MaxBundleSize
	}
	return c.Get(ctx, itlog.TilePath(t), buf, limit)
}

// ConsistencyProof fetches Indelible's GET /v1/proof/consistency?from=m&to=n
// and decodes the proof hashes. It checks the echoed sizes and the hash
// encoding, not the proof. A server without the endpoint gives an error
// matching ErrNotExist.
func (c *Client) ConsistencyProof(ctx context.Context, m, n int64) (tlog.TreeProof, error) {
	body, err := c.Get(ctx, fmt.Sprintf("v1/proof/consistency?from=%d&to=%d", m, n), nil, MaxProofSize)
	if err != nil {
		return nil, err
	}
	var r ConsistencyProof
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("client: consistency proof %d->%d: %w", m, n, err)
	}
	if r.From != m || r.To != n {
		return nil, fmt.Errorf("client: consistency proof for %d->%d answered for %d->%d", m, n, r.From, r.To)
	}
	p, err := r.Proof()
	if err != nil {
		return nil, fmt.Errorf("client: consistency proof %d->%d: %w", m, n, err)
	}
	return p, nil
}

// InclusionProof fetches Indelible's GET /v1/proof/inclusion?index=i&size=n
// and decodes the proof. It checks the echoed index and size and the hash
// encoding, not the proof (see tlog.CheckInclusion).
func (c *Client) InclusionProof(ctx context.Context, i, n int64) (tlog.RecordProof, error) {
	return c.inclusion(ctx, fmt.Sprintf("v1/proof/inclusion?index=%d&size=%d", i, n), i, n)
}

// InclusionProofByHash fetches the inclusion proof, in the tree of size n,
// of the first entry whose RFC 6962 leaf hash is leaf, and returns its index
// and the proof. A leaf the log does not hold gives an error matching
// ErrNotExist.
func (c *Client) InclusionProofByHash(ctx context.Context, leaf tlog.Hash, n int64) (int64, tlog.RecordProof, error) {
	q := url.Values{"hash": {base64.StdEncoding.EncodeToString(leaf[:])}, "size": {strconv.FormatInt(n, 10)}}
	body, err := c.Get(ctx, "v1/proof/inclusion?"+q.Encode(), nil, MaxProofSize)
	if err != nil {
		return 0, nil, err
	}
	var r InclusionProof
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, nil, fmt.Errorf("client: inclusion proof by hash: %w", err)
	}
	if r.TreeSize != n || r.Index < 0 || r.Index >= n {
		return 0, nil, fmt.Errorf("client: inclusion proof by hash in size %d answered for index %d, size %d", n, r.Index, r.TreeSize)
	}
	p, err := r.Proof()
	if err != nil {
		return 0, nil, fmt.Errorf("client: inclusion proof by hash: %w", err)
	}
	return r.Index, p, nil
}

func (c *Client) inclusion(ctx context.Context, path string, i, n int64) (tlog.RecordProof, error) {
	body, err := c.Get(ctx, path, nil, MaxProofSize)
	if err != nil {
		return nil, err
	}
	var r InclusionProof
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("client: inclusion proof %d in %d: %w", i, n, err)
	}
	if r.Index != i || r.TreeSize != n {
		return nil, fmt.Errorf("client: inclusion proof for %d in %d answered for %d in %d", i, n, r.Index, r.TreeSize)
	}
	p, err := r.Proof()
	if err != nil {
		return nil, fmt.Errorf("client: inclusion proof %d in %d: %w", i, n, err)
	}
	return p, nil
}

// Get fetches <prefix>/<path>, appending the body to buf[:0], with retries
// when Retryable says a retry can help (429, 502, 503, 504, transport
// errors; never 500). A body longer than limit is an error.
// Any status but 200 after the retries is a *StatusError.
func (c *Client) Get(ctx context.Context, path string, buf []byte, limit int64) ([]byte, error) {
	u := c.base + "/" + path
	delay := c.backoff
	for attempt := 0; ; attempt++ {
		body, retryAfter, err := c.get1(ctx, u, buf, limit)
		if err == nil {
			return body, nil
		}
		if !Retryable(err) || attempt >= c.retries || ctx.Err() != nil {
			return nil, err
		}
		d := delay
		if retryAfter > d {
			d = retryAfter
		}
		if d > MaxBackoff {
			d = MaxBackoff
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, fmt.Errorf("client: GET %s: %w (after %v)", u, ctx.Err(), err)
		}
		delay *= 2
	}
}

// transportError marks a failure to talk to the server at all, which is
// retried like a 503.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// Retryable reports whether the same request, sent again later, can
// succeed: the failure was a status RetryableStatus accepts, or the server
// could not be reached at all (not a certificate it refused). It is the
// client's side of the one retry rule; the server's status table holds
// itself to RetryableStatus. Get and Stream retry on it; requests that
// change state retry only on 429 and 503, which the server answers before
// storing anything.
func Retryable(err error) bool {
	if IsCertificateError(err) {
		return false // final: a retry would fail the same way
	}
	var se *StatusError
	if errors.As(err, &se) {
		return RetryableStatus(se.Status)
	}
	var te *transportError
	return errors.As(err, &te)
}

// RetryableStatus reports whether an HTTP status means "try again later":
// 429 (rate limited) and 503 (Indelible's answer to conditions that pass:
// pushback, a full disk, a closing server, no witnessed checkpoint yet),
// and 502 and 504 from a proxy in front of the server. A 500 is a fault a
// retry does not fix (a stopped log, a corrupt store): it is not retried.
func RetryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (c *Client) get1(ctx context.Context, u string, buf []byte, limit int64) ([]byte, time.Duration, error) {
	return c.do1(ctx, http.MethodGet, u, "", nil, buf, limit)
}

var errTooLong = errors.New("body too long")

// readAll appends r to b, failing once more than limit bytes were read.
func readAll(r io.Reader, b []byte, limit int64) ([]byte, error) {
	start := len(b)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)-start) > limit {
			return nil, errTooLong
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Post sends body to url (an absolute URL, not under the log prefix) with
// the given content type, once, and returns the response body (at most
// limit bytes). A status outside 2xx is a *StatusError. It is for the
// auditor's alerts and gossip, which go to other services than the log. It
// never follows a redirect: a 3xx answer is a *StatusError (a redirect could
// send the evidence, and the request, anywhere).
func (c *Client) Post(ctx context.Context, url, contentType string, body []byte, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", c.ua)
	hc := *c.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body, nil, limit)
	if err != nil {
		return nil, fmt.Errorf("client: POST %s: reading body: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		if len(b) > MaxErrorBody {
			b = b[:MaxErrorBody]
		}
		return nil, &StatusError{Method: http.MethodPost, URL: url, Status: resp.StatusCode, Body: string(b)}
	}
	return b, nil
}
