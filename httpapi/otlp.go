package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/labstack/echo/v4"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/otlp"
)

// OpenTelemetry logs in (docs/otlp.md): POST /v1/logs is the OTLP/HTTP logs
// endpoint. Collectors retry only 429, 502, 503 and 504 and drop a batch for
// good on any other status, so this handler refuses a whole request only
// when no retry could help (bad token, undecodable body, over the limits);
// records that cannot become events are counted in partial_success, and
// their refusal is itself recorded as an indelible.ingest.rejected event.
// Every reply, errors included, is in the request's encoding: an
// ExportLogsServiceResponse, or a google.rpc.Status.

const (
	routeLogs = "/v1/logs"
	// MaxOTLPDecodes bounds the OTLP requests being read, decompressed,
	// decoded and mapped at once: each may hold up to about 35 MiB while it
	// is (a 16 MiB body, the decompressor's window, pdata's objects), so
	// the bound caps that memory at under 300 MiB however many collectors
	// send at once. The others wait (until their context ends: 503).
	// Appends are not bounded here: the ledger's queue does that.
	MaxOTLPDecodes = 8
	// ActionIngestRejected is the action of the event recording that
	// records of an OTLP request were refused (docs/otlp.md).
	ActionIngestRejected = "indelible.ingest.rejected"
)

// otlpHandler serves POST /v1/logs.
type otlpHandler struct {
	s      *Server
	audit  *audited.Service  // the server's own records (the rejection event)
	l      *eventstore.Layer // the writers' path (the records)
	tokens *auth.Store
	opts   otlp.Options
	// decodes holds a slot per request between reading its body and
	// mapping its records (MaxOTLPDecodes).
	decodes chan struct{}
}

// mountOTLP registers POST /v1/logs. The route's body limit is enforced by
// the handler itself (otlp.MaxWireBytes on the wire, otlp.MaxRequestBytes
// decompressed), so even a refusal for size is a google.rpc.Status.
func (s *Server) mountOTLP(a *audited.Service, defaultAction string) {
	h := &otlpHandler{s: s, audit: a, l: a.Layer(), tokens: a.Tokens(), opts: otlp.Options{DefaultAction: defaultAction},
		decodes: make(chan struct{}, MaxOTLPDecodes)}
	s.otlp = h
	s.route(http.MethodPost, routeLogs, h.serve)
	s.bodyLimits[routeLogs] = math.MaxInt64
}

// OTLPHandler returns the handler of the second listener (serve
// --otlp-listen): POST /v1/logs exactly as on the main listener (same
// tokens, limits, metrics), and 404 for every other path. Without an
// events layer POST /v1/logs is not routed either (serve refuses
// --otlp-listen outside events mode).
func (s *Server) OTLPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != routeLogs {
			http.Error(w, "404 not found: this listener serves only POST "+routeLogs, http.StatusNotFound)
			return
		}
		s.e.ServeHTTP(w, r)
	})
}

// serve answers one OTLP request. It returns nil: every reply, error or
// not, is written here in the request's encoding.
func (h *otlpHandler) serve(c echo.Context) error {
	r := c.Request()
	enc, ctErr := otlp.ParseContentType(r.Header.Get("Content-Type"))
	if ctErr != nil {
		enc = otlp.JSON // an unknown type gets a readable error
	}
	var reply []byte
	err := requireScope(h.tokens, auth.ScopeAppend, func(c echo.Context) error {
		if ctErr != nil {
			return ctErr
		}
		var err error
		reply, err = h.process(c.Request().Context(), requestToken(c).Name, enc, r)
		return err
	})(c)
	hdr := c.Response().Header()
	hdr.Set("Cache-Control", "no-store")
	if err != nil {
		status, msg := h.errorStatus(c, err)
		if status == http.StatusServiceUnavailable && hdr.Get("Retry-After") == "" {
			hdr.Set("Retry-After", retryAfterSeconds)
		}
		return c.Blob(status, enc.ContentType(), otlp.Status(enc, status, msg))
	}
	return c.Blob(http.StatusOK, enc.ContentType(), reply)
}

// errorStatus returns the status and message of an error reply. The
// status comes from statusTable, but for two cases a retry can fix, which
// are 503 here since a collector drops a batch on any other status: an id
// in flight from the same token (a collector retrying while its first
// attempt is still being appended; the retry finds the original index),
// and the request's context ending (the client gave up waiting; its retry
// finds whatever was stored). A 5xx other than 503 is logged and its
// detail kept from the client, as errorHandler does.
func (h *otlpHandler) errorStatus(c echo.Context, err error) (int, string) {
	status := statusOf(err)
	if errors.Is(err, eventstore.ErrDuplicate) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusServiceUnavailable
	}
	switch {
	case status == http.StatusServiceUnavailable:
		return status, unavailableMessage(err)
	case status >= 500:
		h.s.logger.Error("http: internal error", "method", c.Request().Method, "path", routeLogs, "err", err)
		return status, "internal server error"
	}
	return status, err.Error()
}

// process reads, decodes and maps the request, appends the accepted
// records as the token named by, and returns the reply once they are
// durable. If any record is refused, the refusal is recorded first (see
// recordRejected); a failure there fails the request, before anything of
// it is stored, so the sender retries it whole.
func (h *otlpHandler) process(ctx context.Context, by string, enc otlp.Encoding, r *http.Request) ([]byte, error) {
	if r.ContentLength > otlp.MaxWireBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", otlp.ErrTooLarge, r.ContentLength, otlp.MaxWireBytes)
	}
	res, body, err := h.decode(ctx, enc, r)
	if err != nil {
		return nil, err
	}
	if res.Rejected() > 0 {
		if err := h.recordRejected(ctx, by, body, &res); err != nil {
			return nil, err
		}
	}
	if len(res.Events) > 0 {
		if _, err := h.l.Append(ctx, by, res.Events); err != nil {
			return nil, err
		}
	}
	return otlp.Response(enc, res.Rejected(), res.FirstProblem()), nil
}

// decode reads, decompresses, decodes and maps the request's body, holding
// one of the MaxOTLPDecodes slots meanwhile. It returns the mapping and the
// decompressed body.
func (h *otlpHandler) decode(ctx context.Context, enc otlp.Encoding, r *http.Request) (otlp.Result, []byte, error) {
	select {
	case h.decodes <- struct{}{}:
	case <-ctx.Done():
		return otlp.Result{}, nil, fmt.Errorf("waiting to decode: %w", ctx.Err())
	}
	defer func() { <-h.decodes }()
	body, err := otlp.ReadBody(http.MaxBytesReader(nil, r.Body, otlp.MaxWireBytes), r.Header.Get("Content-Encoding"))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return otlp.Result{}, nil, fmt.Errorf("%w: body over %d bytes", otlp.ErrTooLarge, otlp.MaxWireBytes)
		}
		if errors.Is(err, otlp.ErrMalformed) || errors.Is(err, otlp.ErrTooLarge) || errors.Is(err, otlp.ErrContentType) {
			return otlp.Result{}, nil, err
		}
		return otlp.Result{}, nil, fmt.Errorf("%w: reading body: %v", errBadRequest, err)
	}
	logs, err := otlp.Decode(enc, body)
	if err != nil {
		return otlp.Result{}, nil, err
	}
	return otlp.Map(logs, h.opts), body, nil
}

// rejectedMeta is the metadata of an indelible.ingest.rejected event.
type rejectedMeta struct {
	Route       string `json:"route"`
	Count       int    `json:"count"`        // records refused
	Records     int    `json:"records"`      // records in the request
	FirstReason string `json:"first_reason"` // the first refused record and why
	// RequestSHA256 is the digest of the decompressed body.
	RequestSHA256 string `json:"request_sha256"`
}

// recordRejected appends the indelible.ingest.rejected event of a request
// of which some records were refused: actor = the token, metadata = the
// count and the first reason. It is the server's own record, so it goes
// through appendServerEvent.
//
// Its id is the action and the digest of the decompressed body, so a
// sender retrying the same request (after a 503, or a reply it lost)
// finds the record already there, like the records of the request: a
// retried batch stores nothing twice. (The same body sent again on
// purpose is then recorded once too; a writer could also claim the id
// first, but it can as well not send the records: the record is of what
// the server refused, and the sender controls what it sends.)
func (h *otlpHandler) recordRejected(ctx context.Context, by string, body []byte, res *otlp.Result) error {
	sum := sha256.Sum256(body)
	reason := res.FirstProblem()
	if len(reason) > 1024 {
		reason = reason[:1024] // a field value may be long; the count and the digest say the rest
	}
	md, err := json.Marshal(rejectedMeta{Route: routeLogs, Count: res.Rejected(), Records: res.Total,
		FirstReason: reason, RequestSHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		return fmt.Errorf("recording the refused records: %w", err)
	}
	ev := event.Event{
		ID:       ActionIngestRejected + "/" + hex.EncodeToString(sum[:]),
		Actor:    &event.Actor{ID: by, Type: "token"},
		Action:   ActionIngestRejected,
		Outcome:  event.OutcomeFailure,
		Source:   auth.EventSource,
		Metadata: md,
	}
	if err := h.appendServerEvent(ctx, by, ev); err != nil {
		return fmt.Errorf("recording the refused records: %w", err)
	}
	return nil
}

// appendServerEvent appends an event the server records on its own behalf
// (not a writer's), submitted as by, through the server-only entry point
// (audited.Service.Record). It is the one place this file does so.
func (h *otlpHandler) appendServerEvent(ctx context.Context, by string, ev event.Event) error {
	_, err := h.audit.Record(ctx, by, ev)
	return err
}
