// Package audited is the server's audit policy, in one place below HTTP:
// no read of event content without its record in the log, and no token
// change without its record, committed together.
//
// Every action the server records follows the rule erasure set
// (eventstore.Layer.Erase): the change and its indelible.* event commit in ONE
// ledger batch, so after a crash there is either both or neither.
//
//   - Token changes (CreateToken, RevokeToken, Bootstrap): the token's
//     record, kept in the store beside the events (eventstore.TokenKey), and its
//     indelible.token.create or indelible.token.revoke event are one batch.
//   - Audited reads (AuditRead): the read's indelible.read event must be
//     durable before the read's data is sent. Read events are group
//     committed by a batcher the Service owns and Close drains.
//   - Anything else the server records on its own behalf goes through
//     Record, the server-only entry point (writers' events with an
//     indelible.* action or the source "indelible" are refused by
//     eventstore.Layer.Append).
//
// httpapi only translates HTTP requests into these calls.
package audited

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	"indelible.dev/ledger"
)

// ServerActor is the actor and submitter of what the server does on its own.
const ServerActor = auth.ServerActor

// Errors callers branch on.
var (
	// ErrBusy is a read refused because too many read events are already
	// waiting to be recorded (503, retry).
	ErrBusy = errors.New("too many reads waiting to be recorded in the log, retry")
	// ErrClosed means the service was closed (503: the server is stopping).
	ErrClosed = errors.New("audited: closed")
	// ErrTokensLost means the log holds entries but the token store holds no
	// token: the tokens were lost (a tokens.json deleted before its
	// migration). A new admin token is made only when asked (see Bootstrap).
	ErrTokensLost = errors.New("audited: the log has entries but there is no token")
)

// Config configures New.
type Config struct {
	Layer *eventstore.Layer // required
	Log   *ledger.Log       // required: the log under Layer
	// Tokens is the token store. Default: OpenTokens(Log), the store's own
	// token records. A store over another Persister still works, but the
	// token changes made here are stored in the log's store, not in it.
	Tokens *auth.Store
}

// Service is the audit policy of one events layer. Safe for concurrent use.
type Service struct {
	l      *eventstore.Layer
	log    *ledger.Log
	tokens *auth.Store
	reads  *readBatcher
}

// New returns the service over cfg.Layer. It owns its read batcher (stopped
// by Close), not the layer or the log.
func New(cfg Config) (*Service, error) {
	if cfg.Layer == nil || cfg.Log == nil {
		return nil, errors.New("audited: Config.Layer and Config.Log are required")
	}
	s := &Service{l: cfg.Layer, log: cfg.Log, tokens: cfg.Tokens}
	if s.tokens == nil {
		var err error
		if s.tokens, err = OpenTokens(cfg.Log, time.Now); err != nil {
			return nil, err
		}
	}
	s.reads = newReadBatcher(s.l)
	return s, nil
}

// Collectors returns the service's metrics (the read batcher's), for the
// server to register once.
func (s *Service) Collectors() []prometheus.Collector { return s.reads.collectors() }

// Tokens returns the token store (for authentication and listing).
func (s *Service) Tokens() *auth.Store { return s.tokens }

// Layer returns the events layer.
func (s *Service) Layer() *eventstore.Layer { return s.l }

// Close stops the service: reads submitted from now on fail with ErrClosed,
// the read events already queued are appended (their readers answered),
// and the tokens' last-use times are persisted. In a server's shutdown it
// comes after the HTTP server and before the events layer and the log.
func (s *Service) Close() error {
	s.reads.close()
	if err := s.tokens.Flush(); err != nil {
		return fmt.Errorf("audited: closing: %w", err)
	}
	return nil
}

// Record appends events the server records on its own behalf, submitted
// by (a token's name when the server acts for it, else ServerActor), and
// returns once they are durable. It is the server-only entry point: each
// event's action must start with event.ServerActionPrefix (its source is
// set to event.ServerSource). Errors: those of eventstore.Layer.Record.
func (s *Service) Record(ctx context.Context, by string, evs ...event.Event) ([]eventstore.Appended, error) {
	return s.l.Record(ctx, by, evs, nil)
}
