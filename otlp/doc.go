// Package otlp turns OpenTelemetry logs (an OTLP/HTTP ExportLogsServiceRequest,
// https://opentelemetry.io/docs/specs/otlp/) into audit events: it reads and
// decompresses the request body within the limits, decodes it, maps each
// LogRecord to an event.Event as docs/otlp.md specifies field by field, and
// encodes the replies (ExportLogsServiceResponse with partial_success, and
// google.rpc.Status for errors) in the request's encoding. It is pure but
// for reading the body: no HTTP server, no storage, no clock.
//
// # Codec: pdata, with a protowire pre-scan
//
// Requests are decoded with go.opentelemetry.io/collector/pdata/plog, the
// codec the OpenTelemetry Collector itself uses, for protobuf and for OTLP
// JSON alike. We chose it over a hand-written protowire decoder because
// OTLP JSON has many quirks (hex trace and span ids, enums as integers or
// names, int64 as strings or numbers, lowerCamelCase or snake_case) and
// what a Collector accepts is, by construction, what we accept; a second
// decoder would have to be kept in step with the protocol by hand. The
// cost is small: plog pulls in pdata's internal generated code,
// json-iterator, featuregate and multierr (no gRPC: the plogotlp package,
// which imports gRPC, is used only in tests): the indelible binary grew
// by 1.3 MB (30.3 to 31.6 MB, with the handler, the mapping and the
// command).
//
// pdata is not written for hostile input, so two cheap scans run before
// it and bound what it allocates: a protowire walk of the protobuf body
// (countProto) and a byte scan of the JSON body (countJSON) count the
// log records (over MaxRecords: ErrTooLarge, before any decoding) and
// bound the nesting of values (over maxProtoDepth or maxJSONDepth:
// ErrMalformed), so neither a body of millions of empty records nor a
// deeply nested value can exhaust memory or the stack.
//
// # Example
//
//	enc, err := otlp.ParseContentType(r.Header.Get("Content-Type"))
//	body, err := otlp.ReadBody(r.Body, r.Header.Get("Content-Encoding"))
//	logs, err := otlp.Decode(enc, body)
//	res := otlp.Map(logs, otlp.Options{DefaultAction: "otel.log"})
//	// append res.Events; then reply:
//	reply := otlp.Response(enc, res.Rejected, res.FirstProblem)
package otlp
