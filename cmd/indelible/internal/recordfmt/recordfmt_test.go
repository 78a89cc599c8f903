package recordfmt

import (
	"bufio"
	"strings"
	"testing"

	"indelible.dev/client"
)

func TestPrinter(t *testing.T) {
	r := client.Record{Index: 7, EventBytes: []byte(`{"time":"2026-01-02T03:04:05Z","action":"a.b","actor":{"id":"alice"},"submitted_by":"ci-bot"}`)}
	var b strings.Builder
	out := bufio.NewWriter(&b)
	p := NewPrinter(out, false)
	if err := p.Print(r); err != nil {
		t.Fatal(err)
	}
	if err := FlushAll(p, out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "TIME INDEX ACTOR SUBMITTED_BY ACTION RESOURCE OUTCOME" ||
		strings.Join(strings.Fields(lines[1]), " ") != "2026-01-02T03:04:05Z 7 alice ci-bot a.b - -" {
		t.Fatalf("table:\n%s", b.String())
	}
	b.Reset()
	p = NewPrinter(&b, true)
	if err := p.Print(r); err != nil || !strings.HasPrefix(b.String(), "{") || !strings.HasSuffix(b.String(), "}\n") {
		t.Fatalf("NDJSON %q, %v", b.String(), err)
	}
}
