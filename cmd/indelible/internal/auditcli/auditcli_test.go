package auditcli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestProgress checks both renderings: the bar redrawn in place on a
// terminal, and plain lines otherwise.
func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, tty: true, start: time.Now().Add(-time.Second)}
	p.update(500, 1000)
	p.update(600, 1000) // within barEvery of the last draw: not drawn
	p.done()
	out := buf.String()
	if !strings.HasPrefix(out, "\r[===============               ]  50.0% 500/1000 entries") ||
		!strings.Contains(out, "ETA 1s") || strings.Count(out, "\r") != 2 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("bar output %q", out)
	}
	buf.Reset()
	p = &progress{w: &buf, start: time.Now().Add(-2 * time.Second)}
	p.update(250, 1000)
	p.done()
	if out := buf.String(); !regexp.MustCompile(`^audit: 250/1000 entries \(25\.0%\), 12[0-5] entries/s, ETA 6s\n$`).MatchString(out) {
		t.Fatalf("plain output %q", out)
	}
}
