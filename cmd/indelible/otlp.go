package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"unicode"

	"github.com/spf13/pflag"

	"indelible.dev/event"
	"indelible.dev/httpapi"
)

// otlpFlags registers serve's OpenTelemetry flags (docs/otlp.md).
func otlpFlags(f *pflag.FlagSet, cfg *serveConfig) {
	f.StringVar(&cfg.otlpListen, "otlp-listen", "", "events mode: also serve POST /v1/logs (OTLP/HTTP logs, the same tokens) on this address, e.g. :4318 (default: only on --listen)")
	f.StringVar(&cfg.otlpDefaultAction, "otlp-default-action", "", "events mode: action of an OpenTelemetry log record that names none (event_name, event.name, audit.action); default: such records are refused (counted in partial_success)")
}

// checkOTLPFlags checks the OpenTelemetry flags against the mode.
func checkOTLPFlags(cfg serveConfig) error {
	if cfg.mode != "events" && (cfg.otlpListen != "" || cfg.otlpDefaultAction != "") {
		return fmt.Errorf("--otlp-listen and --otlp-default-action need --mode events: OpenTelemetry logs become events")
	}
	if a := cfg.otlpDefaultAction; a != "" {
		if strings.IndexFunc(a, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 || len(a) > 256 {
			return fmt.Errorf("--otlp-default-action %q: want a dotted name of at most 256 bytes with no whitespace, such as otel.log", a)
		}
		if err := event.Reserved(&event.Event{Action: a}, -1); err != nil {
			return fmt.Errorf("--otlp-default-action %q: %w", a, err)
		}
	}
	return nil
}

// startOTLP serves srv's OTLP handler on cfg.otlpListen, with the main
// listener's timeouts and TLS configuration, and prints where. It returns
// the server (to shut down with the main one) or nil if no address is set.
func startOTLP(cfg serveConfig, srv *httpapi.Server, tlsConfig *tls.Config, logger *slog.Logger, out io.Writer) (*http.Server, error) {
	if cfg.otlpListen == "" {
		return nil, nil
	}
	hs := srv.HTTPServer(cfg.otlpListen)
	hs.Handler = srv.OTLPHandler()
	hs.TLSConfig = tlsConfig
	ln, err := net.Listen("tcp", cfg.otlpListen)
	if err != nil {
		return nil, fmt.Errorf("--otlp-listen: %w", err)
	}
	serve := serveFunc(hs, ln)
	go func() {
		if err := serve(); err != nil && err != http.ErrServerClosed {
			logger.Error("OTLP listener stopped", "err", err)
		}
	}()
	fmt.Fprintf(out, "  OpenTelemetry logs (OTLP/HTTP): POST %s://%s/v1/logs (also on the main listener)\n", scheme(tlsConfig), ln.Addr())
	return hs, nil
}
