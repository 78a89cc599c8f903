package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"indelible.dev/api"
	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/eventstore"
	itlog "indelible.dev/tlog"
)

// postWait posts body as token with ?wait=checkpoint and returns the reply.
func (te *testEvents) postWait(t *testing.T, token, body string) api.AppendReply {
	t.Helper()
	status, _, b := te.req(http.MethodPost, "/v1/events?wait=checkpoint", token, "application/x-ndjson", []byte(body))
	if status != http.StatusOK {
		t.Fatalf("POST /v1/events?wait=checkpoint as %s: %d %s", token, status, b)
	}
	var r api.AppendReply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// openingOf returns the event bytes a receipt opens.
func openingOf(t *testing.T, receipt string) []byte {
	t.Helper()
	rc, err := itlog.ParseReceipt([]byte(receipt))
	if err != nil {
		t.Fatalf("receipt: %v", err)
	}
	o, err := event.ParseOpening(rc.Extra)
	if err != nil {
		t.Fatalf("receipt opening: %v", err)
	}
	return o.Bytes
}

// TestDuplicateReceiptNeedsReadScope (issue 18.3): re-sending a known id
// with ?wait=checkpoint must not hand an append-only token the stored
// event's receipt (its salt and bytes) unless the request sent those very
// bytes; a token that may read gets it, recorded as a read.
func TestDuplicateReceiptNeedsReadScope(t *testing.T) {
	te := newTestEvents(t)
	_, secret, err := te.tokens.Create("writer-reader", []auth.Scope{auth.ScopeAppend, auth.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	te.tok["writer-reader"] = secret
	te.secrets.Add("token writer-reader", secret)

	secretEv := `{"id":"e-1","action":"payroll.change","actor":{"id":"alice"},"metadata":{"salary":"123456"}}`
	first := te.postWait(t, "append", secretEv)
	if first.Events[0].Receipt == "" {
		t.Fatal("a new event got no receipt")
	}
	idx := first.Events[0].Index
	reads := len(te.readEvents(t))

	// The same id, other bytes, append-only token: the index, no receipt.
	probe := te.postWait(t, "append", `{"id":"e-1","action":"probe"}`+"\n"+`{"id":"e-2","action":"new"}`)
	if got := probe.Events[0]; got.Index != idx || got.Receipt != "" {
		t.Fatalf("duplicate with other bytes, append-only token: %+v, want index %d and no receipt", got, idx)
	}
	if probe.Events[1].Receipt == "" {
		t.Fatal("the new event beside the duplicate got no receipt")
	}
	if n := len(te.readEvents(t)); n != reads {
		t.Fatalf("%d read records, want %d: nothing was read", n, reads)
	}

	// The same id and the same event (a retry): the receipt of what this
	// request sent, unrecorded (nothing the writer did not know).
	retry := te.postWait(t, "append", secretEv)
	if got := retry.Events[0]; got.Index != idx || got.Receipt == "" {
		t.Fatalf("retry of the same event: %+v, want index %d and a receipt", got, idx)
	}
	if got, want := openingOf(t, retry.Events[0].Receipt), openingOf(t, first.Events[0].Receipt); string(got) != string(want) {
		t.Fatalf("retry's receipt opens %s, want %s", got, want)
	}
	if n := len(te.readEvents(t)); n != reads {
		t.Fatalf("%d read records after a retry, want %d", n, reads)
	}

	// A token that may read: the stored event's receipt, recorded as a read.
	own := te.postWait(t, "writer-reader", `{"id":"w-1","action":"original","metadata":{"k":"v"}}`)
	idx2 := own.Events[0].Index
	dup := te.postWait(t, "writer-reader", `{"id":"w-1","action":"other"}`)
	if got := dup.Events[0]; got.Index != idx2 || got.Receipt == "" {
		t.Fatalf("duplicate, token with read scope: %+v, want index %d and a receipt", got, idx2)
	}
	if b := openingOf(t, dup.Events[0].Receipt); !strings.Contains(string(b), `"original"`) {
		t.Fatalf("receipt opens %s, want the stored event", b)
	}
	rs := te.readEvents(t)
	if len(rs) != reads+1 || !strings.HasPrefix(rs[0], "writer-reader writer-reader ") || !strings.Contains(rs[0], `"indexes":[`) {
		t.Fatalf("read records %q, want one more by writer-reader naming the index", rs)
	}
}

// TestScanBudgetStatus (issue 18.7): a query past its scan budget is a
// 422 whose message names the limit (the budget itself is tested in
// events, TestScanBudget).
func TestScanBudgetStatus(t *testing.T) {
	err := fmt.Errorf("events: listing: %w: 10000 candidate events decrypted, the most a query may", eventstore.ErrScanBudget)
	if got := statusOf(err); got != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422", got)
	}
}
