package otlp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"indelible.dev/event"
)

// Sniff guesses the Content-Encoding a captured request body was sent
// with, from the gzip or zstd magic number ("" if neither). For tools
// (indelible ingest otlp --explain), never for requests, which say what
// they are in their headers.
func Sniff(b []byte) (contentEncoding string) {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	}
	return ""
}

// SniffEncoding returns JSON for a decompressed body that starts with '{'
// (after whitespace), else Proto.
func SniffEncoding(b []byte) Encoding {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return JSON
	}
	return Proto
}

// Explain writes what res makes of a request, one JSON object a line, in
// request order: {"record":N,"event":{...}} with the event's canonical
// bytes as the server would store them, less what only the server adds
// (received_at, submitted_by, and time when the record has none), or
// {"record":N,"refused":"why"}.
func Explain(w io.Writer, res Result) error {
	ev, pr := 0, 0
	for i := range res.Total {
		line := []byte(`{"record":`)
		line = strconv.AppendInt(line, int64(i), 10)
		switch {
		case ev < len(res.Records) && res.Records[ev] == i:
			b, err := event.Canonical(res.Events[ev])
			if err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
			line = append(line, `,"event":`...)
			line = append(line, b...) // verbatim: json.Marshal would escape HTML
			ev++
		case pr < len(res.Problems) && res.Problems[pr].Record == i:
			m, _ := json.Marshal(res.Problems[pr].Msg)
			line = append(line, `,"refused":`...)
			line = append(line, m...)
			pr++
		default:
			return fmt.Errorf("otlp: record %d is neither mapped nor refused", i)
		}
		if _, err := w.Write(append(line, '}', '\n')); err != nil {
			return err
		}
	}
	return nil
}
