package client

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadSegment: a spool file of any content (torn by a kill, edited,
// corrupted) is read without a panic, and only events with an id come out.
func FuzzReadSegment(f *testing.F) {
	f.Add([]byte("{\"id\":\"a\",\"action\":\"x.y\"}\n{\"id\":\"b\",\"action\":\"x.y\"}\n-a\n"))
	f.Add([]byte("{\"id\":\"a\",\"action\":\"x.y\"}\n{\"id\":\"b\",\"act"))
	f.Add([]byte("-\n\n{}\nnot json\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		name := filepath.Join(t.TempDir(), segName(0))
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		evs, err := readSegment(name)
		if err != nil {
			return // a line over the limit
		}
		for _, ev := range evs {
			if ev.ID == "" {
				t.Fatalf("event without an id: %+v", ev)
			}
		}
	})
}
