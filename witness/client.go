package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// SizeContentType is the exact Content-Type of a 409 add-checkpoint answer.
const SizeContentType = "text/x.tlog.size"

// maxResponse bounds an add-checkpoint response body.
const maxResponse = 64 << 10

// Client sends checkpoints to one witness over HTTP (c2sp.org/tlog-witness).
// It is what a log uses to reach its witnesses; it is safe for concurrent use.
type Client struct {
	url      string
	verifier note.Verifier
	http     *http.Client
}

// NewClient returns a client for the witness whose cosignature/v1 verifier
// key is vkey and whose submission prefix is url. hc nil means
// http.DefaultClient (callers bound each call with its context). The client
// uses a copy of hc that never follows redirects: a redirect is answered as
// the non-200 status it is.
func NewClient(vkey, url string, hc *http.Client) (*Client, error) {
	v, err := itlog.NewCosignatureVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("witness %q: %w", vkey, err)
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("witness URL %q is not http(s)", url)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	c.CheckRedirect = noRedirect
	return &Client{url: strings.TrimSuffix(url, "/"), verifier: v, http: &c}, nil
}

// Verifier returns the witness's cosignature verifier.
func (c *Client) Verifier() note.Verifier { return c.verifier }

// URL returns the witness's submission prefix.
func (c *Client) URL() string { return c.url }

// AddCheckpoint sends the signed checkpoint with the consistency proof from
// size old and returns the response body: the witness's cosignature lines,
// not yet verified. A 409 answer with the exact text/x.tlog.size content type
// returns a *ConflictError with the witness's known size; other failures
// return an error naming the status and the start of the body.
func (c *Client) AddCheckpoint(ctx context.Context, old int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error) {
	if len(proof) > MaxProofLines {
		return nil, fmt.Errorf("witness: proof of %d lines", len(proof))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(checkpoint)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/add-checkpoint", &b)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("witness %s: reading response: %w", c.url, err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("witness %s: response larger than %d bytes", c.url, maxResponse)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, nil
	case resp.StatusCode == http.StatusConflict && resp.Header.Get("Content-Type") == SizeContentType:
		s, ok := strings.CutSuffix(string(body), "\n")
		n, err := itlog.ParseSize(s)
		if !ok || err != nil {
			return nil, fmt.Errorf("witness %s: malformed 409 size body %q", c.url, body)
		}
		return nil, &ConflictError{Known: n}
	}
	msg := string(body)
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return nil, &StatusError{Status: resp.StatusCode, Body: strings.TrimSpace(msg)}
}

// StatusError is a non-200, non-409 witness answer.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("witness answered %d: %s", e.Status, e.Body)
}

// ParseKeyURL splits a "VKEY=URL" or "VKEY" flag value at "=http" (base64
// in a key may itself contain '='). url is empty if there is none.
func ParseKeyURL(s string) (vkey, url string) {
	if i := strings.Index(s, "=http"); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}
