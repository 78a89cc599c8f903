package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// EventsConfig configures Events: writers POSTing audit events to an
// events-mode server's /v1/events, closed loop.
type EventsConfig struct {
	URL        string        // base URL, e.g. http://127.0.0.1:8080
	Token      string        // bearer token with the append scope
	Writers    int           // concurrent writers, one request in flight each
	PerRequest int           // events per request: 1 sends one JSON object, more send NDJSON
	Duration   time.Duration // how long to send
	Requests   int64         // if > 0, also stop after this many requests (the same work for an A/B)
	Start      int64         // number of the first event (its time is EventsBase + Start ms)
	// OTLP sends POST /v1/logs instead: OpenTelemetry log records
	// (OTLPBody: protobuf, gzip), PerRequest a request. The bodies are
	// built once and sent as they are, so their times (and contents)
	// repeat every 4 x Writers requests; Start is not used.
	OTLP bool
	// IDs gives every event an "id" (as OTLP's log.record.uid, Kubernetes'
	// auditID and retry-safe clients do): a random tag of the run and the
	// event's number, so ids never repeat, even in a reused store. Not
	// with OTLP.
	IDs bool
}

// EventsResult is what Events measured from the client side.
type EventsResult struct {
	Events, Requests, Errors int64
	Elapsed                  time.Duration
	Latencies                []time.Duration // per request
	FirstErr                 error
}

// EventsBase is the time of generated event 0; event k is k ms later.
var EventsBase = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// eventTimeLayout formats every event time with the same width, so a
// writer can patch the times of a pre-built body in place.
const eventTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func appendEventTime(dst []byte, k int64) []byte {
	return EventsBase.Add(time.Duration(k)*time.Millisecond).AppendFormat(dst, eventTimeLayout)
}

// EventLine appends the k-th generated event as one JSON line (no
// newline): about 300 bytes with realistic spreads of values (5,000 actors,
// 40 actions, 20,000 resources, 4 outcomes, 3 sources) and a time k ms
// after EventsBase, which starts at byte timeOffset of the line.
func EventLine(dst []byte, k int) []byte {
	dst = append(dst, `{"time":"`...)
	dst = appendEventTime(dst, int64(k))
	dst = fmt.Appendf(dst, `","actor":{"id":"user%04d@example.com","type":"user","ip":"10.0.3.7"}`, k%5000)
	dst = fmt.Appendf(dst, `,"action":"kubectl.verb%02d","resource":{"type":"pod","id":"prod/payments-%05d"}`, k%40, k%20000)
	dst = fmt.Appendf(dst, `,"outcome":%q,"source":"kube-apiserver/prod-eu%d"`, []string{"success", "failure", "denied", "unknown"}[k%4], k%3)
	dst = fmt.Appendf(dst, `,"reason":"INC-4211 debugging","metadata":{"request_id":"%d"}}`, k)
	return dst
}

const timeOffset = len(`{"time":"`)

// idWidth is the width of the event number in a generated id.
const idWidth = 20

// eventIDPrefix is what EventLine's output starts with when the event has
// an id: the id is tag-NNNN (idWidth digits), then the rest of the line.
func eventIDPrefix(dst []byte, tag string, k int64) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, tag...)
	dst = append(dst, '-')
	return fmt.Appendf(dst, "%0*d\",", idWidth, k)
}

// eventBodies pre-builds the request bodies, so the writers spend their
// CPU on sending, not on formatting; offs gives where each event's time
// starts in its body, for the writers to patch, and idOffs where its id's
// number starts (tag non-empty: every event has an id).
func eventBodies(n, per int, tag string) (bodies [][]byte, offs, idOffs [][]int) {
	bodies, offs, idOffs = make([][]byte, n), make([][]int, n), make([][]int, n)
	for b := range bodies {
		var buf []byte
		for i := range per {
			k := b*per + i
			if tag != "" {
				idOffs[b] = append(idOffs[b], len(buf)+len(`{"id":"`)+len(tag)+1)
				buf = eventIDPrefix(buf, tag, int64(k))
				line := EventLine(nil, k)
				offs[b] = append(offs[b], len(buf)+timeOffset-1)
				buf = append(buf, line[1:]...) // without its '{'
			} else {
				offs[b] = append(offs[b], len(buf)+timeOffset)
				buf = EventLine(buf, k)
			}
			if per > 1 {
				buf = append(buf, '\n')
			}
		}
		bodies[b] = buf
	}
	return bodies, offs, idOffs
}

// Events runs cfg and returns what the writers saw. A non-200 reply counts
// as an error (its events are not counted).
func Events(ctx context.Context, cfg EventsConfig) (EventsResult, error) {
	if cfg.Writers < 1 || cfg.Writers > MaxWriters || cfg.PerRequest < 1 || cfg.Duration <= 0 {
		return EventsResult{}, errors.New("loadgen: bad events config")
	}
	ct := "application/json"
	if cfg.PerRequest > 1 {
		ct = "application/x-ndjson"
	}
	nb := max(64, 4*cfg.Writers)
	if cfg.PerRequest > 1 {
		nb = 4 * cfg.Writers
	}
	var tag string
	if cfg.IDs && !cfg.OTLP {
		var r [4]byte
		rand.Read(r[:])
		tag = hex.EncodeToString(r[:])
	}
	var bodies [][]byte
	var offs, idOffs [][]int
	route, encoding := "/v1/events", ""
	if cfg.OTLP {
		bodies, offs = otlpBodies(nb, cfg.PerRequest), make([][]int, nb)
		route, ct, encoding = "/v1/logs", "application/x-protobuf", "gzip"
	} else {
		bodies, offs, idOffs = eventBodies(nb, cfg.PerRequest, tag)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Writers, MaxConnsPerHost: cfg.Writers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: RequestTimeout}
	var (
		res      EventsResult
		mu       sync.Mutex
		next     atomic.Int64 // bodies sent
		wg       sync.WaitGroup
		deadline = time.Now().Add(cfg.Duration)
	)
	start := time.Now()
	for range cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var evs, reqs, errs int64
			var first error
			var body, ts, num []byte
			for time.Now().Before(deadline) && ctx.Err() == nil {
				// Every event gets the next time: the events of a run are
				// numbered from cfg.Start in the order bodies are taken.
				n := next.Add(1) - 1
				if cfg.Requests > 0 && n >= cfg.Requests {
					break
				}
				b := n % int64(len(bodies))
				body = append(body[:0], bodies[b]...)
				for j, off := range offs[b] {
					k := cfg.Start + n*int64(cfg.PerRequest) + int64(j)
					ts = appendEventTime(ts[:0], k)
					copy(body[off:], ts)
					if tag != "" {
						num = fmt.Appendf(num[:0], "%0*d", idWidth, k)
						copy(body[idOffs[b][j]:], num)
					}
				}
				t0 := time.Now()
				err := postEvents(ctx, hc, cfg.URL+route, cfg.Token, ct, encoding, body)
				lat = append(lat, time.Since(t0))
				reqs++
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					time.Sleep(pushbackPause)
					continue
				}
				evs += int64(cfg.PerRequest)
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, lat...)
			res.Events += evs
			res.Requests += reqs
			res.Errors += errs
			if res.FirstErr == nil {
				res.FirstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, nil
}

// postEvents posts body to u. For POST /v1/logs (encoding set), a 200
// with a non-empty reply is a partial success: an error too.
func postEvents(ctx context.Context, hc *http.Client, u, token, ct, encoding string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ct)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loadgen: POST %s: %d %.200s", req.URL.Path, resp.StatusCode, b)
	}
	if encoding != "" && len(b) > 0 {
		return fmt.Errorf("loadgen: POST %s: partial success %q", req.URL.Path, b)
	}
	return nil
}

// Print writes a one-line summary with latency percentiles.
func (r EventsResult) Print(w io.Writer) {
	s := r.Elapsed.Seconds()
	slices.Sort(r.Latencies)
	fmt.Fprintf(w, "events %d in %.1fs: %.0f events/s, %d requests (%.0f/s), %d errors; request latency p50 %v p99 %v max %v\n",
		r.Events, s, float64(r.Events)/s, r.Requests, float64(r.Requests)/s, r.Errors,
		Percentile(r.Latencies, 50), Percentile(r.Latencies, 99), Percentile(r.Latencies, 100))
	if r.FirstErr != nil {
		fmt.Fprintf(w, "first error: %v\n", r.FirstErr)
	}
}

// QueryLatency sends GET path n times, one at a time, and returns each
// request's latency, in request order. Any non-200 reply is an error.
func QueryLatency(ctx context.Context, baseURL, token, path string, n int) ([]time.Duration, error) {
	return QueryLatencyFunc(ctx, baseURL, token, func(int) string { return path }, n)
}

// QueryLatencyFunc is QueryLatency with the k-th query's path from path(k).
func QueryLatencyFunc(ctx context.Context, baseURL, token string, path func(k int) string, n int) ([]time.Duration, error) {
	hc := &http.Client{Timeout: RequestTimeout}
	defer hc.CloseIdleConnections()
	out := make([]time.Duration, 0, n)
	var body bytes.Buffer
	for k := range n {
		path := path(k)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		// One buffer for every reply: the client runs in the benchmark's
		// process, whose CPU and allocations it would otherwise inflate
		// (io.ReadAll grew a new ~300 KB buffer per 100-event page).
		body.Reset()
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("loadgen: GET %s: %d %.200s", path, resp.StatusCode, body.Bytes())
		}
		out = append(out, d)
	}
	return out, nil
}
