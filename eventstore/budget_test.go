package eventstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"indelible.dev/event"
)

// TestScanBudget (issue 18.7): a listing whose filters the scanned index
// does not decide stops at its budget with ErrScanBudget naming the limit,
// instead of decrypting every candidate; a cancelled context stops a scan
// (the reader left); the budget comes from Config.
func TestScanBudget(t *testing.T) {
	e := newEnv(t, nil)
	var evs []event.Event
	for range 3 {
		evs = append(evs, event.Event{Action: "rare", Actor: &event.Actor{ID: "alice"}, Outcome: event.OutcomeDenied})
	}
	for range 400 {
		evs = append(evs, event.Event{Action: "common", Actor: &event.Actor{ID: "alice"}, Outcome: event.OutcomeSuccess})
	}
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range evs {
		evs[i].Time = base.Add(time.Duration(i) * time.Millisecond) // the rare ones oldest
	}
	a := e.append("w", evs...)
	if _, _, err := e.log.WaitSize(t.Context(), a[len(a)-1].Index+1); err != nil {
		t.Fatal(err)
	}
	two := Query{Actor: "alice", Action: "rare", Limit: 10}
	p, err := e.l.List(two)
	if err != nil || len(p.Records) != 3 {
		t.Fatalf("default budget: %d records, %v", len(p.Records), err)
	}

	// Two filters are decided by the two indexes' keys (a join), not by
	// decrypting the first one's candidates: the page decrypts only the 3
	// events it returns, and the 403 candidates cost index keys.
	e.l.scan = scanBudget{keys: 1000, decrypts: 3}
	if p, err := e.l.List(two); err != nil || len(p.Records) != 3 || p.NextCursor != "" {
		t.Fatalf("two filters with 3 decrypts: %d records (next %q), %v", len(p.Records), p.NextCursor, err)
	}
	e.l.scan = scanBudget{keys: 500, decrypts: 50}
	_, err = e.l.List(two)
	if !errors.Is(err, ErrScanBudget) || !strings.Contains(err.Error(), "500 index keys examined") {
		t.Fatalf("two filters past the key budget: %v, want ErrScanBudget naming 500", err)
	}
	// One filter decided by the index: a page decrypts only what it returns.
	if p, err := e.l.List(Query{Actor: "alice", Limit: 40}); err != nil || len(p.Records) != 40 {
		t.Fatalf("one filter: %d records, %v", len(p.Records), err)
	}
	e.l.scan = scanBudget{keys: 1000, decrypts: 30}
	_, err = e.l.List(Query{Actor: "alice", Limit: 40})
	if !errors.Is(err, ErrScanBudget) || !strings.Contains(err.Error(), "30 candidate events decrypted") {
		t.Fatalf("one filter past the decrypt budget: %v, want ErrScanBudget naming 30", err)
	}
	e.l.scan = scanBudget{keys: 100, decrypts: 50}
	_, err = e.l.List(Query{Outcome: event.OutcomeDenied, Limit: 10})
	if !errors.Is(err, ErrScanBudget) || !strings.Contains(err.Error(), "100 index keys examined") {
		t.Fatalf("outcome filter past the key budget: %v, want ErrScanBudget naming 100", err)
	}

	e.l.scan = scanBudget{keys: MaxScanKeys, decrypts: MaxScanDecrypts}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.l.ListContext(ctx, two); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled listing: %v", err)
	}
	if _, err := e.l.HistogramContext(ctx, Query{Actor: "alice", Action: "rare", Since: time.Unix(0, 0), Until: time.Now().Add(time.Hour)}, 24*time.Hour*365); err == nil {
		t.Fatal("cancelled histogram: no error")
	}

	e.close()
	kr, err := NewKeyring(e.master)
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	l, err := Open(Config{Log: e.log, Keyring: kr, ScanKeys: 7, ScanDecrypts: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.scan.keys != 7 || l.scan.decrypts != 9 || e.l.scan.keys != MaxScanKeys || e.l.scan.decrypts != MaxScanDecrypts {
		t.Fatalf("budgets %+v and %+v", l.scan, e.l.scan)
	}
}
