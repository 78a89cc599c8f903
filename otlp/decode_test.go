package otlp

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/plog"
	"google.golang.org/protobuf/encoding/protowire"
)

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t testing.TB, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

func TestParseContentType(t *testing.T) {
	for ct, want := range map[string]Encoding{
		"application/x-protobuf": Proto, "application/protobuf": Proto, "application/json": JSON,
		"application/json; charset=utf-8": JSON, "Application/JSON": JSON,
	} {
		if got, err := ParseContentType(ct); err != nil || got != want {
			t.Errorf("ParseContentType(%q) = %v, %v; want %v", ct, got, err, want)
		}
	}
	for _, ct := range []string{"", "text/plain", "application/x-ndjson", "application/json; charset=latin1", "application/"} {
		if _, err := ParseContentType(ct); !errors.Is(err, ErrContentType) {
			t.Errorf("ParseContentType(%q) = %v, want ErrContentType", ct, err)
		}
	}
}

func TestReadBody(t *testing.T) {
	body := []byte(strings.Repeat("otlp ", 1000))
	for _, tc := range []struct {
		enc  string
		wire []byte
	}{
		{"", body}, {"identity", body}, {"gzip", gzipped(t, body)}, {"GZIP", gzipped(t, body)}, {"zstd", zstded(t, body)},
	} {
		got, err := ReadBody(bytes.NewReader(tc.wire), tc.enc)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("ReadBody(%q) = %d bytes, %v", tc.enc, len(got), err)
		}
	}
	// Pooled decoders are reused cleanly.
	for range 3 {
		if got, err := ReadBody(bytes.NewReader(zstded(t, body)), "zstd"); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("zstd again: %v", err)
		}
		if got, err := ReadBody(bytes.NewReader(gzipped(t, body)), "gzip"); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("gzip again: %v", err)
		}
	}
	for _, tc := range []struct {
		enc  string
		wire []byte
		want error
	}{
		{"br", body, ErrContentType},
		{"gzip, zstd", body, ErrContentType},
		{"gzip", body, ErrMalformed},
		{"zstd", body, ErrMalformed},
		{"gzip", gzipped(t, body)[:30], ErrMalformed},
		{"zstd", zstded(t, body)[:15], ErrMalformed},
		{"", make([]byte, MaxRequestBytes+1), ErrTooLarge},
	} {
		if _, err := ReadBody(bytes.NewReader(tc.wire), tc.enc); !errors.Is(err, tc.want) {
			t.Errorf("ReadBody(%q, %d bytes) = %v, want %v", tc.enc, len(tc.wire), err, tc.want)
		}
	}
}

// TestReadBodyBomb decompresses bombs (64 MiB of zeros, four times the limit; gzip and zstd) and
// checks they are refused having allocated little more than the limit.
func TestReadBodyBomb(t *testing.T) {
	const bomb = 64 << 20
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			// Stream the compressed bomb: never hold it whole here either.
			pr, pw := io.Pipe()
			go func() {
				var w io.WriteCloser
				if enc == "gzip" {
					w, _ = gzip.NewWriterLevel(pw, gzip.BestSpeed)
				} else {
					w, _ = zstd.NewWriter(pw, zstd.WithEncoderLevel(zstd.SpeedFastest))
				}
				zero := make([]byte, 1<<20)
				for i := 0; i < bomb/len(zero); i++ {
					if _, err := w.Write(zero); err != nil {
						break
					}
				}
				w.Close()
				pw.Close()
			}()
			wire, err := io.ReadAll(pr)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s bomb: %d bytes on the wire for %d", enc, len(wire), bomb)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err = ReadBody(bytes.NewReader(wire), enc)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("ReadBody(bomb) = %v, want ErrTooLarge", err)
			}
			// The buffer doubles up to the limit: about 2x MaxRequestBytes
			// in all, plus the decoder's window and state.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*MaxRequestBytes {
				t.Errorf("a bomb allocated %d MiB, want at most %d", alloc>>20, 3*MaxRequestBytes>>20)
			} else {
				t.Logf("allocated %d MiB", alloc>>20)
			}
		})
	}
}

// records returns an ExportLogsServiceRequest (protobuf) of n empty
// records, written by hand: 2 bytes a record.
func records(n int) []byte {
	var sl []byte
	for range n {
		sl = protowire.AppendTag(sl, 2, protowire.BytesType)
		sl = protowire.AppendBytes(sl, nil)
	}
	var rl []byte
	rl = protowire.AppendTag(rl, 2, protowire.BytesType)
	rl = protowire.AppendBytes(rl, sl)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rl)
}

func TestDecodeLimits(t *testing.T) {
	logs, err := Decode(Proto, records(MaxRecords))
	if err != nil || logs.LogRecordCount() != MaxRecords {
		t.Fatalf("Decode(%d records) = %d, %v", MaxRecords, logs.LogRecordCount(), err)
	}
	// One more is refused before pdata decodes: a body of millions of
	// empty records costs nothing.
	for _, n := range []int{MaxRecords + 1, 5_000_000} {
		var before, after runtime.MemStats
		b := records(n)
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Decode(Proto, b)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("Decode(%d records) = %v, want ErrTooLarge", n, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("Decode(%d records) allocated %d bytes before refusing", n, alloc)
		}
	}
	// The same in JSON.
	js := `{"resourceLogs":[{"scopeLogs":[{"logRecords":[` + strings.Repeat(`{},`, MaxRecords) + `{}]}]}]}`
	if _, err := Decode(JSON, []byte(js)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Decode(JSON, %d records) = %v, want ErrTooLarge", MaxRecords+1, err)
	}
	js = `{"resourceLogs":[{"scopeLogs":[{"logRecords":[` + strings.Repeat(`{},`, MaxRecords-1) + `{}]}]}]}`
	if l, err := Decode(JSON, []byte(js)); err != nil || l.LogRecordCount() != MaxRecords {
		t.Errorf("Decode(JSON, %d records) = %d, %v", MaxRecords, l.LogRecordCount(), err)
	}
	if _, err := Decode(Proto, make([]byte, MaxRequestBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Decode(over MaxRequestBytes) = %v", err)
	}
}

// deepProto returns a request with one record whose body nests n arrays.
func deepProto(n int) []byte {
	v := []byte{}
	for range n {
		var arr []byte
		arr = protowire.AppendTag(arr, 1, protowire.BytesType)
		arr = protowire.AppendBytes(arr, v)
		var av []byte
		av = protowire.AppendTag(av, 5, protowire.BytesType)
		v = protowire.AppendBytes(av, arr)
	}
	var lr []byte
	lr = protowire.AppendTag(lr, 5, protowire.BytesType)
	lr = protowire.AppendBytes(lr, v)
	var sl []byte
	sl = protowire.AppendTag(sl, 2, protowire.BytesType)
	sl = protowire.AppendBytes(sl, lr)
	var rl []byte
	rl = protowire.AppendTag(rl, 2, protowire.BytesType)
	rl = protowire.AppendBytes(rl, sl)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rl)
}

func TestDecodeDepth(t *testing.T) {
	if _, err := Decode(Proto, deepProto(maxProtoDepth-1)); err != nil {
		t.Errorf("Decode(%d deep) = %v", maxProtoDepth-1, err)
	}
	for _, n := range []int{maxProtoDepth + 1, 10_000} {
		if _, err := Decode(Proto, deepProto(n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%d deep) = %v, want ErrMalformed", n, err)
		}
	}
	js := strings.Repeat("[", 100_000)
	if _, err := Decode(JSON, []byte(js)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Decode(JSON 100000 deep) = %v, want ErrMalformed", err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, tc := range []struct {
		enc  Encoding
		body string
	}{
		{Proto, "\x0a\x05abc"},       // truncated field
		{Proto, "\x0a\x02\x12\x05"},  // truncated nested
		{Proto, "\xff\xff\xff\xff"},  // bad tag
		{Proto, "\x08\x96\x01\x0b"},  // start-group on a bytes field
		{JSON, ""},                   // empty JSON
		{JSON, "{"},                  // truncated
		{JSON, `{"resourceLogs":5}`}, // wrong type
		{JSON, "not json"},
	} {
		if _, err := Decode(tc.enc, []byte(tc.body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%d, %q) = %v, want ErrMalformed", tc.enc, tc.body, err)
		}
	}
	// An empty protobuf body is a request with no records.
	if l, err := Decode(Proto, nil); err != nil || l.LogRecordCount() != 0 {
		t.Errorf("Decode(empty) = %d, %v", l.LogRecordCount(), err)
	}
	if l, err := Decode(JSON, []byte("{}")); err != nil || l.LogRecordCount() != 0 {
		t.Errorf("Decode({}) = %d, %v", l.LogRecordCount(), err)
	}
}

// TestDecodeJSONQuirks decodes OTLP JSON as the spec writes it: hex ids,
// integer enums, int64 as strings (and as numbers), lowerCamelCase.
func TestDecodeJSONQuirks(t *testing.T) {
	js := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
	"scopeLogs":[{"scope":{"name":"s"},"logRecords":[{
		"timeUnixNano":"1764065700123456789","observedTimeUnixNano":1764065701000000000,
		"severityNumber":9,"severityText":"INFO","eventName":"user.login",
		"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
		"body":{"stringValue":"hello"},
		"attributes":[{"key":"user.id","value":{"intValue":"42"}},{"key":"n","value":{"intValue":7}}]}]}]}]}`
	logs, err := Decode(JSON, []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	e, problem := mapOne(t, logs, Options{})
	if problem != "" {
		t.Fatal(problem)
	}
	if e.Action != "user.login" || e.Actor.ID != "42" || e.Time.UnixNano() != 1764065700123456789 || e.Source != "api" {
		t.Errorf("mapped %+v %+v", e, e.Actor)
	}
	want := `{"attributes":{"n":7},"body":"hello","resource":{"service.name":"api"},"scope":{"name":"s"},"severity":"INFO","span_id":"eee19b7ec3c1b174","trace_id":"5b8efff798038103d269b633813fc60c"}`
	if string(e.Metadata) != want {
		t.Errorf("metadata\n got %s\nwant %s", e.Metadata, want)
	}
}

// TestCountMatchesPdata: the pre-scan's count is pdata's, on requests
// pdata built.
func TestCountMatchesPdata(t *testing.T) {
	logs := plog.NewLogs()
	n := 0
	for i := range 3 {
		rl := logs.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("k", "v")
		for j := range i + 1 {
			sl := rl.ScopeLogs().AppendEmpty()
			sl.Scope().Attributes().PutEmptySlice("s").AppendEmpty().SetEmptyMap().PutStr("a", "b")
			for range j + 2 {
				lr := sl.LogRecords().AppendEmpty()
				lr.Body().SetEmptyMap().PutEmptySlice("x").AppendEmpty().SetInt(1)
				lr.Attributes().PutStr("a", "b")
				n++
			}
		}
	}
	pb, _ := (&plog.ProtoMarshaler{}).MarshalLogs(logs)
	js, _ := (&plog.JSONMarshaler{}).MarshalLogs(logs)
	if c, err := countProto(pb); c != n || err != nil {
		t.Errorf("countProto = %d, %v; want %d", c, err, n)
	}
	if c, err := countJSON(js); c != n || err != nil {
		t.Errorf("countJSON = %d, %v; want %d", c, err, n)
	}
}
