package otlp

import (
	"encoding/json"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Response returns an ExportLogsServiceResponse in enc: with
// partial_success{rejected_log_records, error_message} when rejected > 0,
// else empty (a full success). Fields (opentelemetry-proto,
// collector/logs/v1/logs_service.proto):
//
//	ExportLogsServiceResponse  1: ExportLogsPartialSuccess partial_success
//	ExportLogsPartialSuccess   1: int64 rejected_log_records  2: string error_message
func Response(enc Encoding, rejected int, msg string) []byte {
	if enc == JSON {
		if rejected == 0 {
			return []byte("{}")
		}
		// OTLP JSON: lowerCamelCase, int64 as a decimal string.
		b := []byte(`{"partialSuccess":{"rejectedLogRecords":"`)
		b = strconv.AppendInt(b, int64(rejected), 10)
		b = append(b, `","errorMessage":`...)
		m, _ := json.Marshal(msg) // a string always marshals
		b = append(b, m...)
		return append(b, "}}"...)
	}
	if rejected == 0 {
		return []byte{}
	}
	var ps []byte
	ps = protowire.AppendTag(ps, 1, protowire.VarintType)
	ps = protowire.AppendVarint(ps, uint64(rejected))
	if msg != "" {
		ps = protowire.AppendTag(ps, 2, protowire.BytesType)
		ps = protowire.AppendString(ps, msg)
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, ps)
}

// gRPC status codes (google.rpc.Code) used in Status.
const (
	codeInvalidArgument   = 3
	codeNotFound          = 5
	codePermissionDenied  = 7
	codeResourceExhausted = 8
	codeUnimplemented     = 12
	codeInternal          = 13
	codeUnavailable       = 14
	codeUnauthenticated   = 16
)

// grpcCode returns the google.rpc.Code matching an HTTP status.
func grpcCode(httpStatus int) int {
	switch httpStatus {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return codeInvalidArgument
	case http.StatusUnauthorized:
		return codeUnauthenticated
	case http.StatusForbidden:
		return codePermissionDenied
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusUnsupportedMediaType, http.StatusMethodNotAllowed:
		return codeUnimplemented
	case http.StatusTooManyRequests:
		return codeResourceExhausted
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return codeUnavailable
	}
	return codeInternal
}

// Status returns a google.rpc.Status in enc for an error answered with
// httpStatus: the matching gRPC code and msg. (OTLP/HTTP sends errors so.)
//
//	google.rpc.Status  1: int32 code  2: string message  3: repeated Any details
func Status(enc Encoding, httpStatus int, msg string) []byte {
	code := grpcCode(httpStatus)
	if enc == JSON {
		b := []byte(`{"code":`)
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, `,"message":`...)
		m, _ := json.Marshal(msg)
		b = append(b, m...)
		return append(b, '}')
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(code))
	if msg != "" {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, msg)
	}
	return b
}
