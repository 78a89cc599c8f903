package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"indelible.dev/client"
)

// TestSlogHandler: a slog record becomes an event on the real server: the
// message the action, the mapped attributes the fields, the others (with
// groups) the metadata; records below the level are not written.
func TestSlogHandler(t *testing.T) {
	ts := newTestServer(t)
	c, err := client.New(ts.url, ts.token)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(client.NewSlogHandler(c, &client.SlogOptions{Source: "billing"}))
	log.Debug("not written")
	log.With("tenant", "acme").WithGroup("req").Info("invoice approved", "id", 7)
	log.Info("user login", "actor", "alice", "resource", "console", "outcome", "denied", "err", errors.New("bad password"))
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	for i := int64(0); ; i++ {
		r, err := ts.layer.Get(i)
		if err != nil {
			break
		}
		if r.Event.Source != "billing" {
			continue
		}
		var m map[string]any
		json.Unmarshal(r.EventBytes, &m)
		got = append(got, m)
	}
	if len(got) != 2 {
		t.Fatalf("%d events: %v", len(got), got)
	}
	b0, _ := json.Marshal(got[0]["metadata"])
	if got[0]["action"] != "invoice_approved" || string(b0) != `{"req":{"id":7},"tenant":"acme"}` || got[0]["time"] == nil {
		t.Errorf("first: %v", got[0])
	}
	b1, _ := json.Marshal(got[1]["metadata"])
	if got[1]["action"] != "user_login" || got[1]["outcome"] != "denied" || string(b1) != `{"err":"bad password"}` {
		t.Errorf("second: %v", got[1])
	}
	if a, _ := got[1]["actor"].(map[string]any); a["id"] != "alice" {
		t.Errorf("second: actor %v", got[1]["actor"])
	}
}
