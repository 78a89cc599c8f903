package audited

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// A reader's filter values are recorded cut to MaxRecordedValue bytes, so a
// read cannot append kilobytes to the log (issue 18 item 7).
func TestQueryMetaCapsValues(t *testing.T) {
	long := strings.Repeat("é", 8000) // 16,000 bytes, two per rune
	m := QueryMeta("/v1/events", url.Values{"actor": {long}, "action": {"login"}})
	if got := m.Query["action"]; got != "login" {
		t.Errorf("short value recorded as %q", got)
	}
	got := m.Query["actor"]
	if len(got) > MaxRecordedValue+32 {
		t.Fatalf("recorded value is %d bytes, want at most %d", len(got), MaxRecordedValue+32)
	}
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…(16000 bytes)") {
		t.Errorf("recorded value %q: want valid UTF-8 ending with the original length", got)
	}
	ev, err := ReadEvent("reader", m)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ev.Metadata); n > 1024 {
		t.Errorf("read event metadata is %d bytes for a 16 KB filter, want under 1 KiB", n)
	}
}
