package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"indelible.dev/api"
	"indelible.dev/eventstore"
)

// item is one event to deliver: its record and its exported document.
type item struct {
	index      int64
	time       time.Time
	commitment [32]byte
	doc        []byte // the record as GET /v1/events returns it, plus receipt_url
}

// document returns the exported form of r: {"index","event","event_bytes",
// "salt","commitment","receipt_url"} (the first five exactly as the events
// API writes them); receiptPfx is receiptPrefix's.
func document(r *eventstore.Record, receiptPfx []byte) ([]byte, error) {
	w := r.Wire()
	b := api.AppendRecord(nil, &w)
	if len(b) == 0 || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("export: record %d: unexpected encoding", r.Index)
	}
	b = append(b[:len(b)-1], receiptPfx...)
	b = strconv.AppendInt(b, r.Index, 10)
	return append(b, `/receipt"}`...), nil
}

// receiptPrefix returns `,"receipt_url":"<base>v1/events/`, JSON-escaped
// and without its closing quote: document appends the index and the rest,
// so the URL is escaped once per export rather than once per event.
func receiptPrefix(base string) []byte {
	q, _ := json.Marshal(base + "v1/events/")
	return append([]byte(`,"receipt_url":`), q[:len(q)-1]...)
}

// docsSize is the size of the items' documents plus perItem bytes each:
// a request body's capacity, so building it copies each document once.
func docsSize(items []item, perItem int) int {
	n := 0
	for _, it := range items {
		n += len(it.doc) + perItem
	}
	return n
}

// sink delivers one batch. send returns the items still to deliver (none
// when all were delivered), the delay the receiver asked for (Retry-After)
// and an error describing why some were not delivered.
type sink interface {
	send(ctx context.Context, items []item) (rest []item, retryAfter time.Duration, err error)
}

type httpSink struct {
	client *http.Client
	url    string
	auth   string // the Authorization header, or ""
}

// post sends body and returns the response body of a 2xx answer.
func (s *httpSink) post(ctx context.Context, contentType string, body []byte) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "indelible-export")
	if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the answer of %s: %w", s.url, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("%s answered %s: %s", s.url, resp.Status, snippet(rb))
	}
	return rb, 0, nil
}

// retryAfter parses a Retry-After of seconds (bounded to 10 minutes).
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 600)) * time.Second
}

func snippet(b []byte) string {
	const max = 200
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}

// ndjsonSink POSTs the documents as NDJSON, one per line.
type ndjsonSink struct{ httpSink }

func (s *ndjsonSink) send(ctx context.Context, items []item) ([]item, time.Duration, error) {
	body := make([]byte, 0, docsSize(items, 1))
	for _, it := range items {
		body = append(append(body, it.doc...), '\n')
	}
	if _, ra, err := s.post(ctx, "application/x-ndjson", body); err != nil {
		return items, ra, err
	}
	return nil, 0, nil
}

// hecSink POSTs to Splunk's HTTP Event Collector: concatenated JSON
// objects, the document as "event", the index and commitment as indexed
// "fields".
type hecSink struct {
	httpSink
	index string
}

func (s *hecSink) send(ctx context.Context, items []item) ([]item, time.Duration, error) {
	body := make([]byte, 0, docsSize(items, 200+len(s.index)))
	for _, it := range items {
		body = append(body, `{"time":`...)
		body = strconv.AppendFloat(body, float64(it.time.UnixMilli())/1000, 'f', 3, 64)
		body = append(body, `,"source":"indelible","sourcetype":"indelible:event"`...)
		if s.index != "" {
			ib, _ := json.Marshal(s.index)
			body = append(append(body, `,"index":`...), ib...)
		}
		body = append(body, `,"event":`...)
		body = append(body, it.doc...)
		body = append(body, `,"fields":{"indelible_index":"`...)
		body = strconv.AppendInt(body, it.index, 10)
		body = append(body, `","indelible_commitment":"`...)
		body = base64.StdEncoding.AppendEncode(body, it.commitment[:])
		body = append(body, "\"}}\n"...)
	}
	rb, ra, err := s.post(ctx, "application/json", body)
	if err != nil {
		return items, ra, err
	}
	var ans struct {
		Code *int   `json:"code"`
		Text string `json:"text"`
	}
	if json.Unmarshal(rb, &ans) == nil && ans.Code != nil && *ans.Code != 0 {
		return items, 0, fmt.Errorf("%s answered code %d: %s", s.url, *ans.Code, ans.Text)
	}
	return nil, 0, nil
}

// bulkSink POSTs to Elasticsearch's or OpenSearch's _bulk API: one create
// per event, with _id = <16 hex digits of SHA-256(origin)>-<index>, so a
// resent event is a 409 conflict (already there: delivered); only the
// items that failed otherwise are sent again.
type bulkSink struct {
	httpSink
	index string
	idPfx string
}

// docID is the _id of the event at index i.
func docID(idPfx string, i int64) string { return idPfx + "-" + strconv.FormatInt(i, 10) }

// originHash is the first 16 hex digits of SHA-256(origin).
func originHash(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(sum[:8])
}

// bulkAnswer is the part of a _bulk answer the sink reads: each item is
// {"<action>":{...}}, and the sink sends only creates.
type bulkAnswer struct {
	Errors bool `json:"errors"`
	Items  []struct {
		Create *bulkItemOutcome `json:"create"`
	} `json:"items"`
}

type bulkItemOutcome struct {
	ID     string          `json:"_id"`
	Status int             `json:"status"`
	Error  json.RawMessage `json:"error"`
}

func (s *bulkSink) send(ctx context.Context, items []item) ([]item, time.Duration, error) {
	ib, _ := json.Marshal(s.index)
	body := make([]byte, 0, docsSize(items, 40+len(ib)+len(s.idPfx)+20))
	for _, it := range items {
		body = append(body, `{"create":{"_index":`...)
		body = append(body, ib...)
		body = append(body, `,"_id":"`...)
		body = append(append(body, s.idPfx...), '-')
		body = strconv.AppendInt(body, it.index, 10)
		body = append(body, "\"}}\n"...)
		body = append(append(body, it.doc...), '\n')
	}
	rb, ra, err := s.post(ctx, "application/x-ndjson", body)
	if err != nil {
		return items, ra, err
	}
	var ans bulkAnswer
	if err := json.Unmarshal(rb, &ans); err != nil {
		return items, 0, fmt.Errorf("%s: the bulk answer is not JSON: %v", s.url, err)
	}
	if len(ans.Items) != len(items) {
		return items, 0, fmt.Errorf("%s: the bulk answer has %d items for %d sent", s.url, len(ans.Items), len(items))
	}
	var rest []item
	var first string
	for k, m := range ans.Items {
		o := m.Create
		if o == nil || o.ID != docID(s.idPfx, items[k].index) {
			return items, 0, fmt.Errorf("%s: bulk answer item %d is not the create of %s", s.url, k, docID(s.idPfx, items[k].index))
		}
		if o.Status/100 == 2 || o.Status == http.StatusConflict {
			continue // created, or already there
		}
		rest = append(rest, items[k])
		if first == "" {
			first = fmt.Sprintf("item %s: status %d %s", o.ID, o.Status, snippet(o.Error))
		}
	}
	if len(rest) > 0 {
		return rest, 0, fmt.Errorf("%s: %d of %d bulk items failed (first: %s)", s.url, len(rest), len(items), first)
	}
	return nil, 0, nil
}

// newSink returns the sink of x.
func newSink(x *Export, client *http.Client, origin string) (sink, error) {
	u, err := baseURL(x.URL)
	if err != nil {
		return nil, err
	}
	path := strings.TrimSuffix(u.Path, "/")
	h := httpSink{client: client}
	switch x.Type {
	case TypeHTTPNDJSON:
		h.url = u.String()
		if x.token != "" {
			h.auth = "Bearer " + x.token
		}
		return &ndjsonSink{h}, nil
	case TypeSplunkHEC:
		if !strings.HasSuffix(path, "/services/collector/event") {
			u.Path = path + "/services/collector/event"
		}
		h.url, h.auth = u.String(), "Splunk "+x.token
		return &hecSink{httpSink: h, index: x.Index}, nil
	case TypeElasticBulk:
		if !strings.HasSuffix(path, "/_bulk") {
			u.Path = path + "/_bulk"
		}
		h.url = u.String()
		if x.token != "" {
			h.auth = "ApiKey " + x.token
		}
		return &bulkSink{httpSink: h, index: x.Index, idPfx: originHash(origin)}, nil
	}
	return nil, fmt.Errorf("export %q: unknown type %q", x.Name, x.Type)
}
