package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/spf13/pflag"

	"indelible.dev/cmd/indelible/internal/eventsetup"
	"indelible.dev/export"
	"indelible.dev/httpapi"
)

// exportsFlags registers serve's --exports.
func exportsFlags(f *pflag.FlagSet, cfg *serveConfig) {
	f.StringVar(&cfg.exports, "exports", "", "events mode: YAML file of exports streaming committed events to SIEMs (splunk_hec, elastic_bulk, http_ndjson; docs/exports.md)")
	f.StringVar(&cfg.publicURL, "public-url", "", "with --exports or --rules: the server's URL as users reach it (e.g. behind a proxy), the base of each exported event's receipt URL and of each alert's console link (default: http(s)://<--listen>/)")
}

// loadExports reads and checks --exports before anything starts, so a bad
// file refuses the start; nil when the flag is not given.
func loadExports(cfg serveConfig) (*export.File, error) {
	if cfg.publicURL != "" {
		if cfg.exports == "" && cfg.rules == "" {
			return nil, errors.New("--public-url is the base of the exports' receipt URLs and the alerts' console links: it needs --exports or --rules")
		}
		if err := checkPublicURL(cfg.publicURL); err != nil {
			return nil, fmt.Errorf("--public-url: %w", err)
		}
	}
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
	base := cfg.publicURL
	if base == "" {
		base = receiptBase(cfg.listen, https)
	}
	r, err := export.Start(f, export.Options{Events: es.Layer, Audit: es.Audit, ReceiptBase: base,
		Logger: logger, Metrics: m})
	if err != nil {
		return nil, err
	}
	return r.Close, nil
}

// checkPublicURL accepts an absolute http(s) URL with no query, fragment
// or credentials: receipt URLs are built by appending to it.
func checkPublicURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http:// or https:// URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q: no query, fragment or credentials in the URL", s)
	}
	return nil
}

// receiptBase is the server's base URL from its listen address, when
// --public-url does not give it.
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
