package client

import (
	"context"
	"encoding/json"
	"fmt"
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
	b, err := c.do(ctx, http.MethodDelete, path, "", nil, MaxProofSize)
	if err != nil {
		return Tombstone{}, err
	}
	var t Tombstone
	if err := json.Unmarshal(b, &t); err != nil {
		return Tombstone{}, fmt.Errorf("client: erase reply: %w", err)
	}
	return t, nil
}
