package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"testing"

	"indelible.dev/event"
)

// TestReadBody: a body is read whole whatever its announced length (none,
// exact, past the preallocation bound), and one over the limit is refused,
// announced or not.
func TestReadBody(t *testing.T) {
	for _, c := range []struct {
		name    string
		n       int
		chunked bool
		tooBig  bool
	}{
		{"empty", 0, false, false},
		{"small", 300, false, false},
		{"300 KB", 300 << 10, false, false},
		{"past the preallocation", bodyPrealloc + 12345, false, false},
		{"chunked", 3 << 20, true, false},
		{"at the limit", event.MaxRequestBytes, false, false},
		{"over the limit", event.MaxRequestBytes + 1, false, true},
		{"over the limit, chunked", event.MaxRequestBytes + 1, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := bytes.Repeat([]byte("abcdefg\n"), c.n/8+1)[:c.n]
			r := httptest.NewRequest("POST", "/v1/events", bytes.NewReader(want))
			if c.chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(bytes.NewReader(want))
			}
			got, err := readBody(r)
			if c.tooBig {
				if !errors.Is(err, event.ErrTooLarge) {
					t.Fatalf("%d bytes: %v, want ErrTooLarge", c.n, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%d bytes: got %d bytes, %v", c.n, len(got), err)
			}
		})
	}
}
