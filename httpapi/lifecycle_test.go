package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"indelible.dev/internal/tlogtest"
)

// TestPurgePendingReported: an erasure whose client gives up while a long
// reader holds the store's old files leaves its purge pending: /readyz
// stays 200 but says so, and /metrics counts it; the background purge
// finishes once the reader is gone, and both go back to nothing pending.
func TestPurgePendingReported(t *testing.T) {
	te := newTestEvents(t)
	idx := te.append("application/x-ndjson", `{"action":"a.one"}`+"\n"+`{"action":"a.two"}`+"\n")
	if _, _, err := te.l.WaitSize(t.Context(), idx[1]+1); err != nil {
		t.Fatal(err)
	}
	if status, _, b := te.req(http.MethodDelete, fmt.Sprintf("/v1/events/%d?reason=setup", idx[1]), "admin", "", nil); status != 200 {
		t.Fatalf("first erasure: %d %s", status, b)
	}
	holding, release := make(chan struct{}), make(chan struct{})
	go te.l.ScanExt(nil, nil, false, func(k, v []byte) bool {
		close(holding)
		<-release
		return false
	})
	<-holding
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, fmt.Sprintf("%s/v1/events/%d?reason=gives-up", te.url, idx[0]), nil)
	req.Header.Set("Authorization", "Bearer "+te.tok["admin"])
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the erasure answered %d under a long reader", resp.StatusCode)
	}
	state := func() (string, string) {
		_, _, ready := te.get("/readyz")
		_, _, metrics := te.get("/metrics")
		for _, l := range strings.Split(string(metrics), "\n") {
			if strings.HasPrefix(l, "indelible_purges_pending ") {
				return string(ready), l
			}
		}
		return string(ready), "no indelible_purges_pending"
	}
	tlogtest.Eventually(t, 10*time.Second, "the cut purge reported", func() (bool, string) {
		ready, m := state()
		return strings.HasPrefix(ready, "ok\npurges pending: 1 ") && m == "indelible_purges_pending 1", ready + m
	})
	if status, _, _ := te.get("/readyz"); status != 200 {
		t.Fatalf("/readyz %d with a purge pending", status)
	}
	close(release)
	tlogtest.Eventually(t, 20*time.Second, "the background purge", func() (bool, string) {
		ready, m := state()
		return ready == "ok\n" && m == "indelible_purges_pending 0", ready + m
	})
}
