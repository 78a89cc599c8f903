package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Tombstone is what remains of an erased event.
type Tombstone struct {
	Index      int64     `json:"index"`
	ErasedAt   time.Time `json:"erased_at"`
	ErasedBy   string    `json:"erased_by"`
	Reason     string    `json:"reason"`
	EraseIndex int64     `json:"erase_index"` // the indelible.erase event recording it
}

// Erase erases event i (admin): DELETE /v1/events/{i}?reason=. An event
// already erased is a *StatusError with status 410 whose body holds the
// tombstone.
func (c *Client) Erase(ctx context.Context, i int64, reason string) (Tombstone, error) {
	path := "v1/events/" + strconv.FormatInt(i, 10) + "?" + url.Values{"reason": {reason}}.Encode()
	return doJSON[Tombstone](ctx, c, http.MethodDelete, path, "", nil, MaxProofSize, "erase reply")
}
