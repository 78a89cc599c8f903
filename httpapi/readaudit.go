package httpapi

import (
	"fmt"

	"github.com/labstack/echo/v4"

	"indelible.dev/audited"
)

// Audited reads: every read of event content is recorded in the log before
// its data is sent. The policy and its batcher live in package audited; the
// handlers only call auditRead.

// ActionRead is the action of the event recording a read (docs/events.md).
const ActionRead = audited.ActionRead

// readMeta is the metadata of an indelible.read event.
type readMeta = audited.ReadMeta

// queryMeta is the metadata of a read with filters.
func queryMeta(route string, v map[string][]string) readMeta { return audited.QueryMeta(route, v) }

// indexMeta is the metadata of a read of one index.
func indexMeta(route string, i int64) readMeta { return audited.IndexMeta(route, i) }

// auditRead queues the indelible.read event of the request's read and
// returns a function waiting for it to be durable; call it before sending
// any event data, and send none if it fails. Without an audit service (a
// server with no events layer) it does nothing.
func (s *Server) auditRead(c echo.Context, meta readMeta) (wait func() error, err error) {
	if s.audit == nil {
		return func() error { return nil }, nil
	}
	wait, err = s.audit.AuditRead(c.Request().Context(), requestToken(c).Name, meta)
	if err != nil {
		return nil, fmt.Errorf("recording the read: %w", err)
	}
	return wait, nil
}
