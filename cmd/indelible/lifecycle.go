package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"indelible.dev/httpapi"
)

// serveUntil runs serve (hs.Serve or hs.ServeTLS on a listener) until it
// fails or ctx is done; then it marks srv as shutting down (/readyz answers
// 503), drains in-flight requests for up to shutdownTimeout, and returns.
// The caller closes its store after serveUntil returns.
func serveUntil(ctx context.Context, hs *http.Server, srv *httpapi.Server, serve func() error, logger *slog.Logger, closing string) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining HTTP requests, then closing the " + closing)
	srv.SetShuttingDown()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		logger.Warn("HTTP shutdown", "err", err)
		hs.Close()
	}
	return nil
}
