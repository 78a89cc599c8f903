package api

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"indelible.dev/event"
)

// Limits of a page of GET /v1/events.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ErrBadQuery is the error of a query the server refuses (400), wrapped
// with the parameter named. (Its text predates this package: the events
// API has always answered "events: bad query: ...".)
var ErrBadQuery = errors.New("events: bad query")

// QueryParams are the query parameters of GET /v1/events, all of them.
var QueryParams = []string{"actor", "action", "resource", "outcome", "source", "since", "until", "limit", "cursor"}

// Query is a filtered listing of GET /v1/events (and the filters of GET
// /v1/events/stream): filters AND together, exact match; zero values are
// no filter.
type Query struct {
	Actor, Action, Resource, Outcome, Source string
	// Since and Until bound the event's time: Since <= time < Until; zero
	// is open.
	Since, Until time.Time
	// Limit is the page size, 1..MaxLimit; 0 means DefaultLimit.
	Limit int
	// Cursor is a previous Page's NextCursor.
	Cursor string
}

// Values returns q as query parameters, the zero fields left out, times in
// RFC 3339 with nanoseconds, UTC. ParseQuery(q.Values()) is q (with its
// times in UTC) for any q it accepts.
func (q Query) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("actor", q.Actor)
	set("action", q.Action)
	set("resource", q.Resource)
	set("outcome", q.Outcome)
	set("source", q.Source)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("cursor", q.Cursor)
	return v
}

// ParseQuery parses the query parameters of GET /v1/events (the stream
// takes them too, less "cursor", which there is a resume index). Unknown
// parameters, bad times (RFC 3339), bad limits are errors wrapping
// ErrBadQuery that name the parameter. since is inclusive and until
// exclusive (since <= time < until), since before until; outcome must be one
// of the four outcomes; a parameter may be given once.
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	for name, vals := range v {
		if !slices.Contains(QueryParams, name) {
			return Query{}, fmt.Errorf("%w: unknown parameter %q", ErrBadQuery, name)
		}
		if len(vals) != 1 {
			return Query{}, fmt.Errorf("%w: parameter %q given %d times", ErrBadQuery, name, len(vals))
		}
	}
	q.Actor, q.Action, q.Resource = v.Get("actor"), v.Get("action"), v.Get("resource")
	q.Outcome, q.Source, q.Cursor = v.Get("outcome"), v.Get("source"), v.Get("cursor")
	switch q.Outcome {
	case "", event.OutcomeSuccess, event.OutcomeFailure, event.OutcomeDenied, event.OutcomeUnknown:
	default:
		return Query{}, fmt.Errorf("%w: outcome %q is not success, failure, denied or unknown", ErrBadQuery, q.Outcome)
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		s := v.Get(p.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return Query{}, fmt.Errorf("%w: %s is not an RFC 3339 time: %q", ErrBadQuery, p.name, s)
		}
		*p.t = t.UTC()
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return Query{}, fmt.Errorf("%w: since must be before until", ErrBadQuery)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return Query{}, fmt.Errorf("%w: limit must be an integer from 1 to %d, not %q", ErrBadQuery, MaxLimit, s)
		}
		q.Limit = n
	}
	return q, nil
}
