package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"indelible.dev/eventstore"
)

// serveErase erases an event: DELETE /v1/events/{index}?reason=TEXT (admin).
// It replies with the tombstone once the event's bytes are gone from the
// store: {"index","erased_at","erased_by","reason","erase_index"}. An event
// already erased answers 410 with its tombstone (erasing is not repeated).
func (h *eventHandlers) serveErase(c echo.Context) error {
	q, err := queryParams(c, "reason")
	if err != nil {
		return err
	}
	i, err := indexParam(c)
	if err != nil {
		return err
	}
	ts, err := h.l.Erase(c.Request().Context(), i, requestToken(c).Name, q.Get("reason"))
	if err != nil {
		return fmt.Errorf("erasing event %d: %w", i, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, ts)
}

// goneBody is the JSON body of a 410: the error, and the tombstone of an
// erased event or the day of a shredded one.
func goneBody(err error, msg string) ([]byte, bool) {
	var ee *eventstore.ErasedError
	if errors.As(err, &ee) {
		b, _ := json.Marshal(struct {
			Error string `json:"error"`
			eventstore.Tombstone
		}{msg, ee.Tombstone})
		return b, true
	}
	var se *eventstore.ShreddedError
	if errors.As(err, &se) {
		b, _ := json.Marshal(struct {
			Error    string `json:"error"`
			Index    int64  `json:"index"`
			Day      string `json:"day"`
			Shredded bool   `json:"shredded"`
		}{msg, se.Index, se.Day.Format("2006-01-02"), true})
		return b, true
	}
	return nil, false
}
