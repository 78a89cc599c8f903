package client

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"
	"unicode"
)

// SlogOptions configure NewSlogHandler. The zero value logs every record at
// Info or above, with its message as the action.
type SlogOptions struct {
	// Level is the lowest level written. Default slog.LevelInfo.
	Level slog.Leveler
	// ActionKey, if set, names the attribute whose value is the action; the
	// message then goes into the metadata as "msg". A record without that
	// attribute takes its message as the action.
	ActionKey string
	// Source is the events' source field, if set.
	Source string
	// Sync makes each record wait until it is durable (LogSync) instead of
	// being queued (Log).
	Sync bool
}

// The attributes NewSlogHandler maps to event fields (at the top level,
// outside any group); every other attribute goes into the metadata.
const (
	SlogActor    = "actor"    // Actor.ID
	SlogResource = "resource" // Resource.ID
	SlogOutcome  = "outcome"  // success, failure, denied or unknown
	SlogReason   = "reason"
)

// NewSlogHandler returns a log/slog handler that writes each record as an
// audit event through c: the message (or the ActionKey attribute) is the
// action, with each run of white space replaced by "_" (an action has none);
// the attributes named by SlogActor, SlogResource, SlogOutcome and
// SlogReason fill those fields; the others, groups nested, are the metadata;
// the record's time is the event's time. Handle returns Log's error (or
// LogSync's, with Sync).
func NewSlogHandler(c *Client, opts *SlogOptions) slog.Handler {
	h := &slogHandler{c: c}
	if opts != nil {
		h.o = *opts
	}
	if h.o.Level == nil {
		h.o.Level = slog.LevelInfo
	}
	return h
}

type slogHandler struct {
	c      *Client
	o      SlogOptions
	attrs  []slog.Attr // from WithAttrs, already under their groups
	groups []string
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.o.Level.Level() }

func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], nest(h.groups, as)...)
	return &h2
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(h.groups[:len(h.groups):len(h.groups)], name)
	return &h2
}

// nest puts as under the groups, innermost last.
func nest(groups []string, as []slog.Attr) []slog.Attr {
	for i := len(groups) - 1; i >= 0; i-- {
		as = []slog.Attr{{Key: groups[i], Value: slog.GroupValue(as...)}}
	}
	return as
}

func (h *slogHandler) Handle(ctx context.Context, r slog.Record) error {
	ev := Event{Action: r.Message, Source: h.o.Source}
	if !r.Time.IsZero() {
		ev.Time = r.Time.UTC().Format(time.RFC3339Nano)
	}
	meta := map[string]any{}
	top := func(a slog.Attr) {
		v := a.Value.Resolve()
		switch a.Key {
		case h.o.ActionKey:
			if h.o.ActionKey != "" {
				meta["msg"] = r.Message
				ev.Action = v.String()
				return
			}
		case SlogActor:
			ev.Actor = &Actor{ID: v.String()}
			return
		case SlogResource:
			ev.Resource = &Resource{ID: v.String()}
			return
		case SlogOutcome:
			ev.Outcome = v.String()
			return
		case SlogReason:
			ev.Reason = v.String()
			return
		}
		addAttr(meta, a)
	}
	for _, a := range h.attrs {
		top(a)
	}
	var rest []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		if len(h.groups) == 0 {
			top(a)
		} else {
			rest = append(rest, a)
		}
		return true
	})
	for _, a := range nest(h.groups, rest) {
		addAttr(meta, a)
	}
	ev.Action = strings.Join(strings.FieldsFunc(ev.Action, unicode.IsSpace), "_")
	if len(meta) > 0 {
		b, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		ev.Metadata = b
	}
	if h.o.Sync {
		_, err := h.c.LogSync(ctx, ev)
		return err
	}
	return h.c.Log(ctx, ev)
}

// addAttr adds a to m, a group as a nested object (an empty group or key
// is left out, as slog handlers do).
func addAttr(m map[string]any, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		as := v.Group()
		if len(as) == 0 {
			return
		}
		if a.Key == "" { // inline the group
			for _, g := range as {
				addAttr(m, g)
			}
			return
		}
		sub := map[string]any{}
		for _, g := range as {
			addAttr(sub, g)
		}
		m[a.Key] = sub
		return
	}
	if a.Key == "" {
		return
	}
	switch v.Kind() {
	case slog.KindTime:
		m[a.Key] = v.Time().UTC().Format(time.RFC3339Nano)
	case slog.KindDuration:
		m[a.Key] = v.Duration().String()
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			m[a.Key] = err.Error()
			return
		}
		m[a.Key] = v.Any()
	default:
		m[a.Key] = v.Any()
	}
}
