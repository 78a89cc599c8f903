package main

import (
	"bytes"
	"testing"
)

// FuzzReadSIEMCopy: no input panics the parser of a SIEM's copy, and every
// commitment it accepts is 32 bytes.
func FuzzReadSIEMCopy(f *testing.F) {
	f.Add([]byte(`{"index":1,"event":{},"event_bytes":"e30=","salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","commitment":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}` + "\n"))
	f.Add([]byte(`{"_source":{"index":2}}` + "\n" + `{"event":{"index":3}}`))
	f.Add([]byte("not json\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _, err := readSIEMCopy(bytes.NewReader(b))
		if err != nil {
			return
		}
		for i, c := range got {
			if i < 0 || len(c) != 32 {
				t.Fatalf("accepted index %d with a %d-byte commitment", i, len(c))
			}
		}
	})
}
