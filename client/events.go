package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"indelible.dev/api"
	"indelible.dev/receipt"
	itlog "indelible.dev/tlog"
)

// Limits on what the events API reads and sends.
const (
	// MaxEventsResponse bounds a reply of the events API: a page of 1,000
	// records of up to 64 KiB of event bytes each, which a record carries
	// twice (as JSON and as base64), or the reply to 10,000 appends with
	// their receipts.
	MaxEventsResponse = 256 << 20
	// MaxReceiptSize bounds a receipt: a checkpoint with its cosignatures,
	// the proof, and the extra line (salt and up to 64 KiB of event bytes).
	MaxReceiptSize = 256 << 10
	// MaxStreamLine bounds one line of the event stream.
	MaxStreamLine = 1 << 20
	// AppendBatch is how many events the CLI sends per request; the server
	// takes up to 10,000 events and 16 MiB per request.
	AppendBatch = 1000
	// MaxBatchBytes keeps each NDJSON request of AppendNDJSONReader under
	// the server's 16 MiB limit.
	MaxBatchBytes = 15 << 20
	// MaxNDJSONLine bounds one line read by AppendNDJSONReader (an event's
	// canonical bytes are at most 64 KiB; a writer's may have more spaces).
	MaxNDJSONLine = 1 << 20
)

// Actor is who did it: the same JSON object as the server's.
type Actor = api.Actor

// Resource is what it was done to: the same JSON object as the server's.
type Resource = api.Resource

// Event is an audit event as a writer sends it, and as records carry it (then
// with ReceivedAt and SubmittedBy, which the server sets). Time and
// ReceivedAt are RFC 3339 strings, kept as the server wrote them.
type Event = api.Event

// Record is the unit every read of the events API returns: the event (as a
// JSON object, for people), the exact event bytes the commitment covers, the
// salt and the commitment (the log entry at Index). It verifies nothing.
// Its Decode parses the event bytes.
type Record = api.Record

// Appended is one element of an append reply, in request order. Receipt is
// set when the append waited for a checkpoint.
type Appended = api.Appended

// Page is one page of a query, newest first. NextCursor is "" on the last.
type Page = api.Page

// Query is a filtered listing of GET /v1/events: filters AND together,
// exact match; zero values are left out.
type Query = api.Query

// Token is a token's public record (never its secret).
type Token = api.Token

// NewToken is a created token and its secret, shown once.
type NewToken = api.NewToken

// Append appends events (POST /v1/events, a JSON array) and returns their
// indexes in order once they are durable; with wait, once a published
// checkpoint covers them, each with its receipt.
func (c *Client) Append(ctx context.Context, evs []Event, wait bool) ([]Appended, error) {
	body, err := json.Marshal(evs)
	if err != nil {
		return nil, fmt.Errorf("client: encoding events: %w", err)
	}
	return c.appendBody(ctx, "v1/events", "application/json", body, wait)
}

// AppendNDJSON appends the events of an NDJSON body (one JSON object per
// line) as Append does.
func (c *Client) AppendNDJSON(ctx context.Context, ndjson []byte, wait bool) ([]Appended, error) {
	return c.appendBody(ctx, "v1/events", "application/x-ndjson", ndjson, wait)
}

// AppendNDJSONReader appends the NDJSON events of r in batches of
// AppendBatch events (and at most MaxBatchBytes), in order, calling done
// with each batch's results once it is durable. Blank lines are skipped. On
// an error, the batches before it are stored and the failing one is not.
func (c *Client) AppendNDJSONReader(ctx context.Context, r io.Reader, done func([]Appended) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxNDJSONLine)
	var batch bytes.Buffer
	n, line := 0, 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		res, err := c.AppendNDJSON(ctx, batch.Bytes(), false)
		if err != nil {
			return fmt.Errorf("client: the batch of %d events ending at line %d: %w", n, line, err)
		}
		batch.Reset()
		n = 0
		return done(res)
	}
	for sc.Scan() {
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 {
			line++
			continue
		}
		if n == AppendBatch || batch.Len()+len(l)+1 > MaxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		line++
		batch.Write(l)
		batch.WriteByte('\n')
		n++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("client: reading NDJSON at line %d: %w", line+1, err)
	}
	return flush()
}

// AppendKubernetes sends a kube-apiserver audit webhook body (an
// audit.k8s.io/v1 EventList) to POST /v1/ingest/kubernetes.
func (c *Client) AppendKubernetes(ctx context.Context, eventList []byte, wait bool) ([]Appended, error) {
	return c.appendBody(ctx, "v1/ingest/kubernetes", "application/json", eventList, wait)
}

func (c *Client) appendBody(ctx context.Context, path, ct string, body []byte, wait bool) ([]Appended, error) {
	if wait {
		path += "?wait=checkpoint"
	}
	r, err := doJSON[api.AppendReply](ctx, c, http.MethodPost, path, ct, body, MaxEventsResponse, "append reply")
	return r.Events, err
}

// Query fetches one page of q (GET /v1/events).
func (c *Client) Query(ctx context.Context, q Query) (Page, error) {
	path := "v1/events"
	if v := q.Values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	return doJSON[Page](ctx, c, http.MethodGet, path, "", nil, MaxEventsResponse, "query reply")
}

// Event fetches the record of event i (GET /v1/events/{i}).
func (c *Client) Event(ctx context.Context, i int64) (Record, error) {
	r, err := doJSON[Record](ctx, c, http.MethodGet, "v1/events/"+strconv.FormatInt(i, 10), "", nil, MaxEventsResponse, "event "+strconv.FormatInt(i, 10))
	if err != nil {
		return Record{}, err
	}
	if r.Index != i {
		return Record{}, fmt.Errorf("client: asked for event %d, got %d", i, r.Index)
	}
	return r, nil
}

// Receipt fetches the receipt of event i (a c2sp.org/tlog-proof document),
// verbatim. Without a pin (WithPin) it verifies nothing. With one, it
// verifies the receipt as indelible.dev/receipt does (the checkpoint signed
// under the pin's policy, the event's commitment opened, its inclusion
// proof checked against the checkpoint), then checks the receipt's
// checkpoint as CheckCheckpoint does the log's: consistent with the pin, by
// a proof either way (fail closed: a proven fork is a *ForkError); a newer
// checkpoint becomes the pin.
func (c *Client) Receipt(ctx context.Context, i int64) ([]byte, error) {
	b, err := c.do(ctx, http.MethodGet, "v1/events/"+strconv.FormatInt(i, 10)+"/receipt", "", nil, MaxReceiptSize)
	if err != nil || c.pinPath == "" {
		return b, err
	}
	v, err := receipt.Verify(b, c.policy)
	if err != nil {
		return nil, fmt.Errorf("client: receipt of event %d: %w", i, err)
	}
	if v.Index != i {
		return nil, fmt.Errorf("client: asked for the receipt of event %d, got one of %d", i, v.Index)
	}
	r, err := itlog.ParseReceipt(b)
	if err != nil {
		return nil, fmt.Errorf("client: receipt of event %d: %w", i, err)
	}
	c.pinMu.Lock()
	defer c.pinMu.Unlock()
	if _, err := c.checkPinned(ctx, r.Checkpoint, true); err != nil {
		return nil, fmt.Errorf("client: receipt of event %d: %w", i, err)
	}
	return b, nil
}

// Stream follows GET /v1/events/stream for the filters of q (its limit and
// cursor are ignored), calling f for each record in index order, from the
// first event after index after (after < 0: from the next event appended).
// It reconnects after a dropped connection, resuming after the last record
// received (or, before any, where the first connection started), at once
// when the server ends a connection at its lifetime, and returns when ctx is
// done (nil), when f fails, or when the server refuses the request (a
// revoked token: 401).
func (c *Client) Stream(ctx context.Context, q Query, after int64, f func(Record) error) error {
	v := q.Values()
	v.Del("limit")
	v.Del("cursor") // the stream takes its own
	delay := c.backoff
	for {
		last, err := c.stream1(ctx, v, after, f)
		if ctx.Err() != nil {
			return nil
		}
		if last > after {
			after = last
			delay = c.backoff
		}
		var se *StatusError
		if errors.As(err, &se) && !Retryable(err) || errors.Is(err, errCallback) || IsCertificateError(err) {
			return err
		}
		if errors.Is(err, errReconnect) {
			delay = c.backoff
			continue // the server ended the connection at its lifetime
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil
		}
		delay = min(delay*2, MaxBackoff)
	}
}

var errCallback = errors.New("stream callback failed")

// errReconnect is a stream connection the server closed at the end of its
// lifetime, saying so in a comment line starting with streamReconnect: the
// client reconnects at once.
var errReconnect = errors.New("client: stream: the server asked to reconnect")

const streamReconnect = ": reconnect:"

// streamStart starts the comment line the server opens a stream with,
// followed by the index the stream starts after.
const streamStart = ": stream of events after index "

// stream1 reads one connection of the stream and returns the last index
// delivered to f.
func (c *Client) stream1(ctx context.Context, v url.Values, after int64, f func(Record) error) (int64, error) {
	u := c.base + "/v1/events/stream"
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return after, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Accept", "text/event-stream")
	if after >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	c.authorize(req)
	// The stream outlives the client's request timeout: a client of its own
	// with the same transport and no timeout.
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return after, &transportError{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
		return after, &StatusError{Method: http.MethodGet, URL: u, Status: resp.StatusCode, Body: string(b)}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), MaxStreamLine)
	var data []byte
	reconnect := false
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0: // end of one server-sent event
			if data == nil {
				continue
			}
			var r Record
			if err := json.Unmarshal(data, &r); err != nil {
				return after, fmt.Errorf("client: stream: %w", err)
			}
			data = nil
			if r.Index <= after {
				continue // already delivered
			}
			if err := f(r); err != nil {
				return after, fmt.Errorf("%w: %w", errCallback, err)
			}
			after = r.Index
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		case bytes.HasPrefix(line, []byte(streamReconnect)):
			reconnect = true
		case after < 0 && bytes.HasPrefix(line, []byte(streamStart)):
			// Started at the next event appended: the server says which,
			// so a reconnection resumes there and misses nothing.
			if i, err := strconv.ParseInt(string(line[len(streamStart):]), 10, 64); err == nil {
				after = i
			}
		}
	}
	if err := sc.Err(); err != nil {
		return after, &transportError{fmt.Errorf("client: stream: %w", err)}
	}
	if reconnect {
		return after, errReconnect
	}
	return after, &transportError{errors.New("client: stream: connection closed")}
}

// CreateToken creates a token (admin) and returns it with its secret.
func (c *Client) CreateToken(ctx context.Context, name string, scopes []string) (NewToken, error) {
	body, _ := json.Marshal(api.TokenRequest{Name: name, Scopes: scopes})
	t, err := doJSON[NewToken](ctx, c, http.MethodPost, "v1/tokens", "application/json", body, MaxProofSize, "token reply")
	if err != nil {
		return NewToken{}, err
	}
	if t.Secret == "" {
		return NewToken{}, errors.New("client: token reply: no secret")
	}
	return t, nil
}

// Tokens lists the tokens (admin), revoked ones included.
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	r, err := doJSON[api.TokenList](ctx, c, http.MethodGet, "v1/tokens", "", nil, MaxEventsResponse, "token list")
	return r.Tokens, err
}

// RevokeToken revokes the named token (admin), at once.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "v1/tokens/"+url.PathEscape(name), "", nil, MaxErrorBody)
	return err
}

// doJSON sends one API request (see do) and decodes its JSON reply, which
// what names in errors; the zero T with any error.
func doJSON[T any](ctx context.Context, c *Client, method, path, ct string, body []byte, limit int64, what string) (T, error) {
	var v, zero T
	b, err := c.do(ctx, method, path, ct, body, limit)
	if err != nil {
		return zero, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return zero, fmt.Errorf("client: %s: %w", what, err)
	}
	return v, nil
}

// authorize adds the Bearer token, if any.
func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// do sends one API request with retries: GETs when Retryable says so; other methods only on 429 and 503, which the server answers before
// storing anything (a transport error after sending an append may mean it was
// stored: the caller decides, e.g. by resending with the same event ids).
// A status outside 2xx after the retries is a *StatusError.
func (c *Client) do(ctx context.Context, method, path, ct string, body []byte, limit int64) ([]byte, error) {
	u := c.base + "/" + path
	delay := c.backoff
	for attempt := 0; ; attempt++ {
		b, retryAfter, err := c.do1(ctx, method, u, ct, body, nil, limit)
		if err == nil {
			return b, nil
		}
		var se *StatusError
		again := Retryable(err)
		if method != http.MethodGet {
			// Not a proxy's 502/504 nor a transport error: the server may
			// have stored the request.
			again = errors.As(err, &se) && (se.Status == http.StatusTooManyRequests || se.Status == http.StatusServiceUnavailable)
		}
		if !again || attempt >= c.retries || ctx.Err() != nil {
			return nil, err
		}
		d := min(max(delay, retryAfter), MaxBackoff)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, fmt.Errorf("client: %s %s: %w (after %v)", method, u, ctx.Err(), err)
		}
		delay *= 2
	}
}

// do1 sends one request and reads the reply into buf (reused when it has
// room), at most limit bytes. A GET must be answered 200 (a 204 or 206 is
// not the whole resource); any other method, any 2xx.
func (c *Client) do1(ctx context.Context, method, u, ct string, body, buf []byte, limit int64) ([]byte, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, 0, fmt.Errorf("client: %w", err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("User-Agent", c.ua)
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, err
		}
		return nil, 0, &transportError{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 || method == http.MethodGet && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
		var ra time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			ra = time.Duration(s) * time.Second
		}
		return nil, ra, &StatusError{Method: method, URL: u, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	b, err := readAll(resp.Body, buf[:0], limit)
	if err != nil {
		if errors.Is(err, errTooLong) {
			return nil, 0, fmt.Errorf("client: %s %s: %w: longer than %d bytes", method, u, ErrTooLarge, limit)
		}
		return nil, 0, &transportError{fmt.Errorf("client: %s %s: reading body: %w", method, u, err)}
	}
	return b, 0, nil
}
