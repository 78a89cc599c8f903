package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"indelible.dev/api"
	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
)

// The events routes (events mode).
const (
	routeEvents     = "/v1/events"
	routeEvent      = "/v1/events/:index"
	routeReceipt    = "/v1/events/:index/receipt"
	routeStream     = "/v1/events/stream"
	routeKubernetes = "/v1/ingest/kubernetes"
)

// StreamHeartbeat is how often the event stream sends an SSE comment when no
// event is due, so proxies and clients see the connection is alive.
const StreamHeartbeat = 15 * time.Second

// StreamReconnect starts the comment line the event stream sends before it
// closes at the end of its lifetime (Config.StreamMaxAge): a client should
// reconnect at once, sending Last-Event-ID.
const StreamReconnect = ": reconnect:"

// DefaultStreamMaxAge is how long one event stream connection lives at most.
const DefaultStreamMaxAge = time.Hour

// Why a stream ended, as its context's cause.
var (
	errStreamLifetime = errors.New("stream lifetime over")
	errStreamShutdown = errors.New("the server is shutting down")
)

// eventErrorBody is the JSON error of a rejected event: the message, and
// which event (its 0-based position in the request) and which field.
type eventErrorBody struct {
	Error    string `json:"error"`
	Position *int   `json:"event,omitempty"`
	Field    string `json:"field,omitempty"`
}

// eventHandlers serves one events layer.
type eventHandlers struct {
	s      *Server
	l      *eventstore.Layer
	log    *ledger.Log
	tokens *auth.Store
}

// mountEvents registers the events routes on s; every route needs a token.
// The two append routes accept bodies up to event.MaxRequestBytes.
func (s *Server) mountEvents(l *eventstore.Layer, log *ledger.Log, tokens *auth.Store) {
	h := &eventHandlers{s: s, l: l, log: log, tokens: tokens}
	appendScope := func(f echo.HandlerFunc) echo.HandlerFunc { return requireScope(tokens, auth.ScopeAppend, f) }
	readScope := func(f echo.HandlerFunc) echo.HandlerFunc { return requireScope(tokens, auth.ScopeRead, f) }
	s.route(http.MethodPost, routeEvents, appendScope(h.serveAppend))
	s.route(http.MethodPost, routeKubernetes, appendScope(h.serveKubernetes))
	s.bodyLimits[routeEvents] = event.MaxRequestBytes
	s.bodyLimits[routeKubernetes] = event.MaxRequestBytes
	s.route(http.MethodGet, routeEvents, readScope(h.serveQuery))
	s.route(http.MethodGet, routeStream, readScope(h.serveStream))
	s.route(http.MethodGet, routeEvent, readScope(h.serveGet))
	s.route(http.MethodGet, routeReceipt, readScope(h.serveReceipt))
	s.route(http.MethodDelete, routeEvent, requireScope(tokens, auth.ScopeAdmin, h.serveErase))
}

// readBody reads a request body of at most event.MaxRequestBytes.
// bodyPrealloc bounds what readBody allocates on a request's
// Content-Length before its bytes arrive.
const bodyPrealloc = 1 << 20

func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > event.MaxRequestBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d per request", event.ErrTooLarge, r.ContentLength, event.MaxRequestBytes)
	}
	// Read into a buffer of the announced length, so that a request of
	// 300 KB is not read through ten doublings of a buffer (ReadFrom wants
	// MinRead bytes free before each read, the one that sees the end
	// included). Only up to bodyPrealloc: a writer announcing 16 MiB and
	// sending them slowly must not get them allocated before they arrive.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(min(r.ContentLength, bodyPrealloc)) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, event.MaxRequestBytes+1))
	b := buf.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: request body over %d bytes", event.ErrTooLarge, event.MaxRequestBytes)
		}
		return nil, fmt.Errorf("%w: reading body: %v", errBadRequest, err)
	}
	if len(b) > event.MaxRequestBytes {
		return nil, fmt.Errorf("%w: request body over %d bytes", event.ErrTooLarge, event.MaxRequestBytes)
	}
	return b, nil
}

// waitParam parses the append routes' only parameter, ?wait=checkpoint.
func waitParam(c echo.Context) (bool, error) {
	q, err := queryParams(c, "wait")
	if err != nil {
		return false, err
	}
	switch w := q.Get("wait"); w {
	case "":
		return false, nil
	case "checkpoint":
		return true, nil
	default:
		return false, fmt.Errorf("%w: parameter wait: %q is not \"checkpoint\"", errBadRequest, w)
	}
}

func (h *eventHandlers) serveAppend(c echo.Context) error {
	return h.serveIngest(c, func(body []byte) ([]event.Event, error) {
		return event.ParseRequest(c.Request().Header.Get("Content-Type"), body)
	})
}

// serveKubernetes takes kube-apiserver's audit webhook body (an
// audit.k8s.io/v1 EventList, JSON).
func (h *eventHandlers) serveKubernetes(c echo.Context) error {
	return h.serveIngest(c, func(body []byte) ([]event.Event, error) {
		if ct := c.Request().Header.Get("Content-Type"); !isJSON(ct) {
			return nil, fmt.Errorf("%w: %q, want application/json (an audit.k8s.io/v1 EventList)", event.ErrContentType, ct)
		}
		return event.FromKubernetes(body)
	})
}

// isJSON reports whether a Content-Type is application/json (with any
// parameters).
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// serveIngest reads the body, parses it with parse, appends the events as the
// request's token, and replies once they are durable (or covered by a
// published checkpoint, with ?wait=checkpoint). A rejected event is answered
// with its position and field; nothing of the request is then stored.
func (h *eventHandlers) serveIngest(c echo.Context, parse func([]byte) ([]event.Event, error)) error {
	wait, err := waitParam(c)
	if err != nil {
		return err
	}
	body, err := readBody(c.Request())
	if err != nil {
		return err
	}
	evs, err := parse(body)
	if err != nil {
		return eventError(c, err)
	}
	reply, err := h.processAppend(c, evs, wait)
	if err != nil {
		return eventError(c, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, reply)
}

// processAppend appends evs as the request's token and returns the reply.
// With wait, every new event gets its receipt; a duplicate (an id the
// token already used) gets the stored event's receipt only if this request
// sent the very same event (the receipt is then of what it sent), or if
// the token may read events, and then the read is recorded like any other
// (one indelible.read naming the indexes). Otherwise a duplicate gets its
// index only: an append token must not read back, through an id, an event
// it cannot otherwise read.
func (h *eventHandlers) processAppend(c echo.Context, evs []event.Event, wait bool) (api.AppendReply, error) {
	ctx := c.Request().Context()
	tok := requestToken(c)
	res, err := h.l.Append(ctx, tok.Name, evs)
	if err != nil {
		return api.AppendReply{}, err
	}
	reply := api.AppendReply{Events: make([]api.Appended, len(res))}
	indexes := make([]int64, 0, len(res))
	for i, r := range res {
		reply.Events[i] = api.Appended{Index: r.Index, ID: r.ID}
		if !r.Duplicate {
			indexes = append(indexes, r.Index)
		}
	}
	if !wait || len(res) == 0 {
		return reply, nil
	}
	// Which duplicates get a receipt, and which of those are reads. The
	// wait first: Matches reads the stored event, which must be published.
	var all []int64
	for _, r := range res {
		all = append(all, r.Index)
	}
	if _, _, err := h.log.WaitSize(ctx, slices.Max(all)+1); err != nil {
		return api.AppendReply{}, fmt.Errorf("the events are durable, but waiting for their checkpoint: %w", err)
	}
	give := make([]bool, len(res))
	var read []int64
	for i, r := range res {
		if !r.Duplicate {
			give[i] = true
			continue
		}
		same, err := h.l.Matches(r.Index, tok.Name, evs[i])
		if err != nil {
			return api.AppendReply{}, fmt.Errorf("event %d is a duplicate of event %d: %w", i, r.Index, err)
		}
		switch {
		case same:
			give[i] = true
			indexes = append(indexes, r.Index)
		case tok.Allows(auth.ScopeRead):
			give[i] = true
			indexes = append(indexes, r.Index)
			read = append(read, r.Index)
		}
	}
	var audited func() error
	if len(read) > 0 {
		slices.Sort(read)
		read = slices.Compact(read)
		audited, err = h.s.auditRead(c, readMeta{Route: routeEvents, Indexes: read})
		if err != nil {
			return api.AppendReply{}, err
		}
	}
	receipts, err := h.l.WaitReceipts(ctx, indexes)
	if audited != nil {
		if err := audited(); err != nil {
			return api.AppendReply{}, err
		}
	}
	if err != nil {
		return api.AppendReply{}, fmt.Errorf("the events are durable, but waiting for their checkpoint: %w", err)
	}
	k := 0
	// receipts follow indexes: the new events in request order, then the
	// duplicates given one, in request order.
	for i, r := range res {
		if !r.Duplicate {
			reply.Events[i].Receipt = string(receipts[k])
			k++
		}
	}
	for i, r := range res {
		if r.Duplicate && give[i] {
			reply.Events[i].Receipt = string(receipts[k])
			k++
		}
	}
	return reply, nil
}

// eventError answers err itself if it is an *event.Error, adding the
// event's position and field to the JSON error; any other error is returned
// for the error handler. The status comes from statusTable either way.
func eventError(c echo.Context, err error) error {
	var ee *event.Error
	if !errors.As(err, &ee) {
		return err
	}
	body := eventErrorBody{Error: err.Error(), Field: ee.Field}
	if ee.Position >= 0 {
		pos := ee.Position
		body.Position = &pos
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(statusOf(err), body)
}

func (h *eventHandlers) serveQuery(c echo.Context) error {
	v, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: malformed query string: %v", errBadRequest, err)
	}
	q, err := api.ParseQuery(v)
	if err != nil {
		return err
	}
	audited, err := h.s.auditRead(c, queryMeta(routeEvents, v))
	if err != nil {
		return err
	}
	// The read's record is appended while the page is read and encoded;
	// nothing of the page leaves before the record is durable (audited
	// returned nil).
	page, err := h.l.ListContext(c.Request().Context(), q)
	var body *[]byte
	if err == nil {
		body = encodePage(page)
		defer putPage(body)
	}
	if err := audited(); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSONBlob(http.StatusOK, *body)
}

// wirePage returns p's form on the wire: its records' event bytes are not
// copied, and an empty page has "events":[].
func wirePage(p eventstore.Page) api.Page {
	out := api.Page{Events: make([]api.Record, len(p.Records)), NextCursor: p.NextCursor}
	for k := range p.Records {
		out.Events[k] = p.Records[k].Wire()
	}
	return out
}

// pageBufs holds the buffers of pages being written (a page of 100 events
// is about 100 KB).
var pageBufs = sync.Pool{New: func() any { return new([]byte) }}

// encodePage returns the body of a 200 reply with p: the bytes c.JSON
// would write (api.AppendPage), without encoding/json re-validating every
// record it is handed. Send it with c.JSONBlob (the same headers), then
// give it back with putPage.
func encodePage(p eventstore.Page) *[]byte {
	wp := wirePage(p)
	buf := pageBufs.Get().(*[]byte)
	*buf = api.AppendPage((*buf)[:0], &wp)
	return buf
}

func putPage(buf *[]byte) {
	if cap(*buf) <= 4<<20 {
		pageBufs.Put(buf)
	}
}

// writePage answers 200 with p as c.JSON would.
func writePage(c echo.Context, p eventstore.Page) error {
	buf := encodePage(p)
	defer putPage(buf)
	return c.JSONBlob(http.StatusOK, *buf)
}

// indexParam parses the :index path parameter.
func indexParam(c echo.Context) (int64, error) {
	i, err := itlog.ParseSize(c.Param("index"))
	if err != nil {
		return 0, fmt.Errorf("%w: event index %q: %v", errBadRequest, c.Param("index"), err)
	}
	return i, nil
}

// readAudited answers a read of one event (GET /v1/events/{index} and its
// receipt): no query parameters, the index from the path, and read(index)
// audited under route; what names the thing read in errors.
func readAudited[T any](h *eventHandlers, c echo.Context, route, what string, read func(int64) (T, error)) (T, error) {
	var zero T
	if _, err := queryParams(c); err != nil {
		return zero, err
	}
	i, err := indexParam(c)
	if err != nil {
		return zero, err
	}
	audited, err := h.s.auditRead(c, indexMeta(route, i))
	if err != nil {
		return zero, err
	}
	v, err := read(i)
	if err := audited(); err != nil {
		return zero, err
	}
	if err != nil {
		return zero, fmt.Errorf("%s %d: %w", what, i, err)
	}
	return v, nil
}

func (h *eventHandlers) serveGet(c echo.Context) error {
	rec, err := readAudited(h, c, routeEvent, "event", h.l.Get)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, rec.Wire())
}

func (h *eventHandlers) serveReceipt(c echo.Context) error {
	r, err := readAudited(h, c, routeReceipt, "receipt of event", h.l.Receipt)
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header()["Content-Type"] = hdrTextPlain
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(r)
	return err
}

// serveStream sends server-sent events: each new event matching the filters
// as "id: <index>" and "data: <record JSON>", flushed one by one, with a
// comment line every StreamHeartbeat. It resumes after the index in
// Last-Event-ID or ?cursor=, else it starts with the next event appended.
// It ends when the client goes away or the server shuts down.
func (h *eventHandlers) serveStream(c echo.Context) error {
	r := c.Request()
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: malformed query string: %v", errBadRequest, err)
	}
	resume := r.Header.Get("Last-Event-ID")
	if v.Has("cursor") {
		if len(v["cursor"]) > 1 {
			return fmt.Errorf("%w: parameter cursor given %d times", errBadRequest, len(v["cursor"]))
		}
		resume = v.Get("cursor")
		v.Del("cursor")
	}
	q, err := api.ParseQuery(v)
	if err != nil {
		return err
	}
	cp, _ := h.log.Published()
	after := cp.N - 1
	if resume != "" {
		i, err := itlog.ParseSize(resume)
		if err != nil {
			return fmt.Errorf("%w: stream cursor %q (Last-Event-ID or cursor): want an event index: %v", eventstore.ErrBadCursor, resume, err)
		}
		// No stream sent an index the log has not published: a larger one
		// is refused before anything is recorded or sent.
		if i >= cp.N {
			return fmt.Errorf("%w: stream cursor %d (Last-Event-ID or cursor) is past the log: it has %d events (indexes below %d)", eventstore.ErrBadCursor, i, cp.N, cp.N)
		}
		after = i
	}
	// Audited once per connection, before anything is sent (the resume
	// point in the metadata); the records it then delivers are not.
	meta := queryMeta(routeStream, v)
	if resume != "" {
		meta.Query["cursor"] = resume
	}
	audited, err := h.s.auditRead(c, meta)
	if err != nil {
		return err
	}
	if err := audited(); err != nil {
		return err
	}

	// The stream re-checks its token before each event and on each
	// heartbeat, and lives at most streamMaxAge: a revoked token, or one
	// that lost the read scope, ends it, and a client past the lifetime
	// resumes with Last-Event-ID, authenticated and audited again.
	secret, _ := bearerToken(r.Header.Get("Authorization"))
	name := requestToken(c).Name
	recheck := func() error {
		tok, err := h.tokens.Authenticate(secret)
		if err != nil {
			return fmt.Errorf("token %q is no longer valid", name)
		}
		if !tok.Allows(auth.ScopeRead) {
			return fmt.Errorf("token %q no longer has the %q scope", name, auth.ScopeRead)
		}
		return nil
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	lifetime := time.AfterFunc(h.s.streamMaxAge, func() { cancel(errStreamLifetime) })
	defer lifetime.Stop()
	go func() {
		select {
		case <-h.s.stopping:
			cancel(errStreamShutdown) // the server is shutting down: end the stream
		case <-ctx.Done():
		}
	}()

	w := c.Response()
	rc := http.NewResponseController(w.Writer)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	var mu sync.Mutex // serialises writes of events and heartbeats
	write := func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		// The server's WriteTimeout would cut the stream: each write gets its own.
		rc.SetWriteDeadline(time.Now().Add(WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	w.WriteHeader(http.StatusOK)
	if err := write([]byte(": stream of events after index " + strconv.FormatInt(after, 10) + "\n\n")); err != nil {
		return nil
	}
	// The heartbeat goroutine must be gone before the handler returns: the
	// response may not be written after that.
	var hb sync.WaitGroup
	defer hb.Wait()
	defer cancel(nil)
	hb.Add(1)
	go func() {
		defer hb.Done()
		t := time.NewTicker(h.s.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := recheck(); err != nil {
					cancel(err)
					return
				}
				if write([]byte(": heartbeat\n\n")) != nil {
					cancel(nil)
					return
				}
			}
		}
	}()
	err = h.l.Stream(ctx, q, after, func(rec eventstore.Record) error {
		if err := recheck(); err != nil {
			cancel(err)
			return err
		}
		data, err := json.Marshal(rec.Wire())
		if err != nil {
			return err
		}
		msg := make([]byte, 0, len(data)+32)
		msg = append(msg, "id: "...)
		msg = strconv.AppendInt(msg, rec.Index, 10)
		msg = append(msg, "\ndata: "...)
		msg = append(msg, data...)
		msg = append(msg, "\n\n"...)
		return write(msg)
	})
	failed := err != nil && ctx.Err() == nil // not ended by the client, the lifetime, a revocation or shutdown
	cancel(nil)
	hb.Wait()
	// Say why the stream ends, to a client still there: a comment, which
	// clients ignore, except the reconnect one (see StreamReconnect).
	switch cause := context.Cause(ctx); {
	case r.Context().Err() != nil:
	case errors.Is(cause, errStreamLifetime):
		write([]byte(StreamReconnect + " the stream's lifetime of " + h.s.streamMaxAge.String() + " is over: resume with Last-Event-ID\n\n"))
	case cause != nil && !errors.Is(cause, context.Canceled):
		write([]byte(": stream closed: " + cause.Error() + "\n\n"))
	}
	if failed {
		h.s.logger.Warn("http: event stream ended", "err", err)
	}
	return nil // the response is committed: nothing more to say
}
