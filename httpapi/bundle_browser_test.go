package httpapi

import (
	"bytes"
	"testing"

	"github.com/chromedp/chromedp"

	"indelible.dev/evidence"
)

// TestConsoleExportBundle: the console's "Export evidence bundle" button
// downloads the bundle of the time range shown, and it verifies offline
// with every entry accounted for.
func TestConsoleExportBundle(t *testing.T) {
	f, ctx := seededConsole(t, "#/events?range=all")
	waitJS(t, ctx, "rows", `document.querySelectorAll("#rows tr").length > 0`)
	next := downloads(t, ctx)
	do(t, ctx, chromedp.Click(chromedp.ID("export-bundle")))
	b := next()
	r, err := evidence.Verify(bytes.NewReader(b), evidence.Options{Policy: f.policy})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Open == 0 || r.Accounted != r.End-r.Begin || r.Manifest.Window.By != "received_at" {
		t.Fatalf("the console's bundle: %s %v", r.SummaryLine(), r.Failures)
	}
}
