package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/pflag"

	"indelible.dev/cmd/indelible/internal/eventsetup"
	"indelible.dev/export"
	"indelible.dev/httpapi"
)

// exportsFlags registers serve's --exports.
func exportsFlags(f *pflag.FlagSet, cfg *serveConfig) {
	f.StringVar(&cfg.exports, "exports", "", "events mode: YAML file of exports streaming committed events to SIEMs (splunk_hec, elastic_bulk, http_ndjson; docs/exports.md)")
}

// loadExports reads and checks --exports before anything starts, so a bad
// file refuses the start; nil when the flag is not given.
func loadExports(cfg serveConfig) (*export.File, error) {
	if cfg.exports == "" {
		return nil, nil
	}
	if cfg.mode != "events" {
		return nil, errors.New("--exports needs --mode events: raw mode has no events to export")
	}
	f, err := export.Load(cfg.exports)
	if err != nil {
		return nil, fmt.Errorf("--exports: %w", err)
	}
	return f, nil
}

// startExports starts the exports of f over the events layer; stop stops
// them (before the audit service and the layer close).
func startExports(f *export.File, cfg serveConfig, es *eventsetup.Server, metrics *httpapi.Metrics, logger *slog.Logger, https bool) (stop func(), err error) {
	if f == nil {
		return func() {}, nil
	}
	m := export.NewMetrics()
	for _, c := range m.Collectors() {
		metrics.Registry().MustRegister(c)
	}
	r, err := export.Start(f, export.Options{Events: es.Layer, Audit: es.Audit, ReceiptBase: receiptBase(cfg.listen, https),
		Logger: logger, Metrics: m})
	if err != nil {
		return nil, err
	}
	return r.Close, nil
}

// receiptBase is the server's base URL from its listen address (the
// exports file's public_url overrides it).
func receiptBase(listen string, https bool) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		host = "localhost"
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}
