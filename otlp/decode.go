package otlp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/plog"
	"google.golang.org/protobuf/encoding/protowire"

	"indelible.dev/event"
)

// Limits (contract, the same as POST /v1/events): after decompression a
// request is at most MaxRequestBytes and MaxRecords log records.
const (
	MaxRequestBytes = event.MaxRequestBytes
	MaxRecords      = event.MaxEvents
	// MaxWireBytes bounds the body as sent (compressed or not): a little
	// over MaxRequestBytes, for the framing of an incompressible body.
	MaxWireBytes = MaxRequestBytes + 1<<20
)

// Nesting bounds, far above what event metadata may hold
// (event.MaxMetadataDepth), so a record nested too deep is refused by the
// mapping alone; these only stop hostile bodies before pdata recurses.
const (
	maxProtoDepth = 32  // AnyValues inside AnyValues (pdata itself stops at 100 messages)
	maxJSONDepth  = 256 // JSON objects and arrays inside each other
)

// Errors callers branch on (the HTTP layer maps them to status codes).
var (
	// ErrMalformed: the body is not an ExportLogsServiceRequest (400).
	ErrMalformed = errors.New("otlp: malformed request")
	// ErrTooLarge: over MaxRequestBytes or MaxRecords (413).
	ErrTooLarge = errors.New("otlp: request too large")
	// ErrContentType: a Content-Type or Content-Encoding we do not speak (415).
	ErrContentType = errors.New("otlp: unsupported media type")
)

// Encoding is the encoding of a request, and of its reply.
type Encoding int

const (
	Proto Encoding = iota // application/x-protobuf
	JSON                  // application/json (OTLP JSON)
)

// ContentType returns the media type of replies in e.
func (e Encoding) ContentType() string {
	if e == JSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// ParseContentType returns the encoding of a request's Content-Type:
// application/x-protobuf (also application/protobuf) or application/json
// (parameters allowed; a charset other than utf-8 is refused). Other types
// are ErrContentType.
func ParseContentType(ct string) (Encoding, error) {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return Proto, fmt.Errorf("%w: Content-Type %q: want application/x-protobuf or application/json", ErrContentType, ct)
	}
	switch mt {
	case "application/x-protobuf", "application/protobuf":
		return Proto, nil
	case "application/json":
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return JSON, fmt.Errorf("%w: charset %q (only utf-8)", ErrContentType, cs)
		}
		return JSON, nil
	}
	return Proto, fmt.Errorf("%w: Content-Type %q: want application/x-protobuf or application/json", ErrContentType, mt)
}

// zstdDecoders are reused: a zstd.Decoder is costly to create. Each is
// synchronous (one goroutine) and refuses a window or a frame larger than
// a request may be, so a hostile frame header cannot make it allocate more.
var zstdDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(MaxRequestBytes),
		zstd.WithDecoderMaxMemory(MaxRequestBytes+1))
	if err != nil {
		panic("otlp: zstd.NewReader with fixed options failed: " + err.Error())
	}
	return d
}}

var gzipReaders sync.Pool // *gzip.Reader

// ReadBody reads a request body sent with Content-Encoding encoding (""
// or "identity", "gzip", "zstd"; others are ErrContentType) and returns it
// decompressed. It never holds more than MaxRequestBytes+1 decompressed
// bytes: the decompressor is read through a limit, so a decompression bomb
// is ErrTooLarge having cost at most that much memory. A corrupt stream is
// ErrMalformed. Read errors of r (a client gone, a body over the server's
// own limit) are returned wrapped as they are.
func ReadBody(r io.Reader, encoding string) ([]byte, error) {
	var src io.Reader
	switch enc := strings.ToLower(strings.TrimSpace(encoding)); enc {
	case "", "identity":
		src = r
	case "gzip", "x-gzip":
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(r)
		} else {
			err = zr.Reset(r)
		}
		if err != nil {
			return nil, compressedErr("gzip", err)
		}
		defer gzipReaders.Put(zr)
		src = zr
	case "zstd":
		d := zstdDecoders.Get().(*zstd.Decoder)
		if err := d.Reset(r); err != nil {
			zstdDecoders.Put(d)
			return nil, compressedErr("zstd", err)
		}
		defer func() {
			d.Reset(nil) // drop the reference to r
			zstdDecoders.Put(d)
		}()
		src = d
	default:
		return nil, fmt.Errorf("%w: Content-Encoding %q: want gzip, zstd or none", ErrContentType, encoding)
	}
	b, over, err := readLimited(src, MaxRequestBytes)
	if err != nil {
		if src == r {
			return nil, err
		}
		return nil, compressedErr(encoding, err)
	}
	if over {
		return nil, fmt.Errorf("%w: body over %d bytes (after decompression)", ErrTooLarge, MaxRequestBytes)
	}
	return b, nil
}

// readLimited reads r to its end, or until it has limit bytes and one
// more is there to read (over is then true). The buffer doubles as it
// fills but never past limit, so reading costs at most about twice limit
// in all.
func readLimited(r io.Reader, limit int) (b []byte, over bool, err error) {
	b = make([]byte, 0, min(64<<10, limit))
	for {
		if len(b) == cap(b) {
			if len(b) == limit {
				var probe [1]byte
				n, err := io.ReadFull(r, probe[:])
				if n > 0 {
					return nil, true, nil
				}
				if err == io.EOF {
					return b, false, nil
				}
				return nil, false, err
			}
			nb := make([]byte, len(b), min(2*cap(b), limit))
			copy(nb, b)
			b = nb
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// compressedErr classifies an error of a decompressor: the stream's own
// corruption is ErrMalformed; a zstd frame asking for more memory than a
// request may hold is ErrTooLarge; anything else (the connection) as is.
func compressedErr(encoding string, err error) error {
	switch {
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrFrameSizeExceeded):
		return fmt.Errorf("%w: %s stream needs more than %d bytes: %v", ErrTooLarge, encoding, MaxRequestBytes, err)
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF), isZstdCorrupt(err), isFlateCorrupt(err):
		return fmt.Errorf("%w: %s stream: %v", ErrMalformed, encoding, err)
	}
	var mbe interface{ MaxBytes() int64 }
	if errors.As(err, &mbe) {
		return err
	}
	return fmt.Errorf("%w: %s stream: %v", ErrMalformed, encoding, err)
}

func isZstdCorrupt(err error) bool {
	for _, e := range []error{zstd.ErrMagicMismatch, zstd.ErrBlockTooSmall, zstd.ErrUnknownDictionary, zstd.ErrReservedBlockType,
		zstd.ErrCompressedSizeTooBig, zstd.ErrCRCMismatch, zstd.ErrUnexpectedBlockSize} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func isFlateCorrupt(err error) bool {
	return strings.Contains(err.Error(), "flate: corrupt input")
}

// Decode decodes an ExportLogsServiceRequest in enc. A body that is not
// one is ErrMalformed; more than MaxRecords log records, or a body over
// MaxRequestBytes, ErrTooLarge. Both are found before pdata decodes
// anything (see the package doc). An empty body is a request with no
// records, as in protobuf.
func Decode(enc Encoding, body []byte) (plog.Logs, error) {
	if len(body) > MaxRequestBytes {
		return plog.Logs{}, fmt.Errorf("%w: body over %d bytes", ErrTooLarge, MaxRequestBytes)
	}
	var n int
	var err error
	if enc == JSON {
		// pdata's JSON parser (json-iterator) accepts some malformed JSON,
		// in which countJSON could not find the records: only valid JSON
		// goes on.
		n, err = countJSON(body)
		if err == nil && len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
			err = fmt.Errorf("%w: not valid JSON", ErrMalformed)
		}
	} else {
		n, err = countProto(body)
	}
	if err != nil {
		return plog.Logs{}, err
	}
	if n > MaxRecords {
		return plog.Logs{}, fmt.Errorf("%w: more than %d log records", ErrTooLarge, MaxRecords)
	}
	var logs plog.Logs
	if enc == JSON {
		if len(bytes.TrimSpace(body)) == 0 {
			return plog.Logs{}, fmt.Errorf("%w: empty JSON body (send {} for no records)", ErrMalformed)
		}
		u := plog.JSONUnmarshaler{}
		logs, err = u.UnmarshalLogs(body)
	} else {
		u := plog.ProtoUnmarshaler{}
		logs, err = u.UnmarshalLogs(body)
	}
	if err != nil {
		return plog.Logs{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return logs, nil
}

// countProto walks the protobuf structure of an ExportLogsServiceRequest
// down to the log records and through every AnyValue, checking that each
// message field it descends into is well-formed, and returns the number of
// records. It stops at MaxRecords+1.
//
//	ExportLogsServiceRequest  1: ResourceLogs
//	ResourceLogs              1: Resource{1: KeyValue}  2: ScopeLogs
//	ScopeLogs                 1: InstrumentationScope{3: KeyValue}  2: LogRecord
//	LogRecord                 5: AnyValue (body)  6: KeyValue
//	KeyValue                  2: AnyValue
//	AnyValue                  5: ArrayValue{1: AnyValue}  6: KeyValueList{1: KeyValue}
func countProto(b []byte) (int, error) {
	n := 0
	err := fields(b, func(num protowire.Number, rl []byte) error {
		if num != 1 {
			return nil
		}
		return fields(rl, func(num protowire.Number, m []byte) error {
			switch num {
			case 1: // Resource
				return fields(m, keyValues(1, 0))
			case 2: // ScopeLogs
				return fields(m, func(num protowire.Number, m []byte) error {
					switch num {
					case 1: // InstrumentationScope
						return fields(m, keyValues(3, 0))
					case 2: // LogRecord
						n++
						if n > MaxRecords {
							return errStop
						}
						return fields(m, func(num protowire.Number, m []byte) error {
							switch num {
							case 5:
								return anyValue(m, 1)
							case 6:
								return keyValue(m, 0)
							}
							return nil
						})
					}
					return nil
				})
			}
			return nil
		})
	})
	if errors.Is(err, errStop) {
		return n, nil
	}
	return n, err
}

var errStop = errors.New("stop")

// keyValues returns a field visitor descending into the KeyValue messages
// of field number kv.
func keyValues(kv protowire.Number, depth int) func(protowire.Number, []byte) error {
	return func(num protowire.Number, m []byte) error {
		if num == kv {
			return keyValue(m, depth)
		}
		return nil
	}
}

func keyValue(m []byte, depth int) error {
	return fields(m, func(num protowire.Number, v []byte) error {
		if num == 2 {
			return anyValue(v, depth+1)
		}
		return nil
	})
}

func anyValue(m []byte, depth int) error {
	if depth > maxProtoDepth {
		return fmt.Errorf("%w: values nested more than %d deep", ErrMalformed, maxProtoDepth)
	}
	return fields(m, func(num protowire.Number, v []byte) error {
		switch num {
		case 5: // ArrayValue
			return fields(v, func(num protowire.Number, e []byte) error {
				if num == 1 {
					return anyValue(e, depth+1)
				}
				return nil
			})
		case 6: // KeyValueList
			return fields(v, keyValues(1, depth))
		}
		return nil
	})
}

// fields calls f with every length-delimited field of the message b (other
// wire types are checked and skipped). A truncated or malformed field is
// ErrMalformed.
func fields(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: protobuf: %v", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: protobuf: %v", ErrMalformed, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("%w: protobuf: %v", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// countJSON scans an OTLP JSON body without decoding it: it bounds the
// nesting of objects and arrays (maxJSONDepth) and counts the objects that
// are elements of an array at the place of logRecords (an array in an
// object in an array in an object in an array in the top-level object:
// {"resourceLogs":[{"scopeLogs":[{"logRecords":[{...}]}]}]}). Unknown
// fields shaped the same are counted too, so the count is an upper bound
// of the records (a hostile body may be refused for its shape alone). It
// stops at MaxRecords+1. Malformed JSON is left for the decoder to report.
func countJSON(b []byte) (int, error) {
	var stack [maxJSONDepth]byte
	depth, n := 0, 0
	const recordParent = "{[{[{["
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			if depth == maxJSONDepth {
				return 0, fmt.Errorf("%w: JSON nested more than %d deep", ErrMalformed, maxJSONDepth)
			}
			if c == '{' && depth == len(recordParent) && string(stack[:depth]) == recordParent {
				n++
				if n > MaxRecords {
					return n, nil
				}
			}
			stack[depth] = c
			depth++
		case '}', ']':
			if depth > 0 {
				depth--
			}
		}
	}
	return n, nil
}

// itoa is strconv.Itoa, short.
func itoa(i int) string { return strconv.Itoa(i) }
