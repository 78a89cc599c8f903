package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"indelible.dev/alert"
	"indelible.dev/cmd/indelible/internal/eventsetup"
	"indelible.dev/httpapi"
)

// startAlerts starts the alert engine over the events layer with the
// rules of serve --rules (from loadServeRules); SIGHUP reloads
// the rules, and a bad file is refused, logged, and the old rules stay.
// stop closes the engine; call it before the events layer closes.
func startAlerts(path string, rs *alert.Rules, es *eventsetup.Server, metrics *httpapi.Metrics, logger *slog.Logger, consoleURL string) (stop func(), err error) {
	m := alert.NewMetrics()
	for _, c := range m.Collectors() {
		if err := metrics.Registry().Register(c); err != nil {
			return nil, err
		}
	}
	eng, err := alert.Start(alert.Config{Events: es.Layer, Rules: rs, ConsoleURL: consoleURL, Logger: logger, Metrics: m})
	if err != nil {
		return nil, err
	}
	logger.Info("alert rules loaded", "path", path, "rules", len(rs.Rules), "notifiers", len(rs.Notifiers))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				rs, err := alert.LoadPath(path)
				if err != nil {
					logger.Error("alert rules: reload refused, the old rules stay", "err", err)
					continue
				}
				eng.Reload(rs)
				logger.Info("alert rules reloaded", "path", path, "rules", len(rs.Rules), "notifiers", len(rs.Notifiers))
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
		if err := eng.Close(); err != nil {
			logger.Error("closing the alert engine", "err", err)
		}
	}, nil
}

// loadServeRules loads serve --rules before anything starts, so a bad file
// stops serve at once; nil without --rules.
func loadServeRules(cfg serveConfig) (*alert.Rules, error) {
	if cfg.rules == "" {
		return nil, nil
	}
	if cfg.mode != "events" {
		return nil, errors.New("--rules needs --mode events: rules run over events")
	}
	return alert.LoadPath(cfg.rules)
}
