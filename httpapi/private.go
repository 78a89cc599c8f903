package httpapi

import (
	"fmt"
	"strings"

	"github.com/labstack/echo/v4"

	"indelible.dev/auth"
)

// A private log (Config.PrivateLog) serves its otherwise public read routes
// (the checkpoint, hash tiles, entry bundles, the proof endpoints) and
// /metrics only to a Bearer token with the read scope, with the same 401 and
// 403 answers as the events API. What stays open: /healthz and /readyz (they
// tell nothing about the log), the console's page and assets (no data) and
// GET /v1/keys (verifier keys are public by nature). Witnesses are not
// affected: the log pushes checkpoints and proofs to them.

// readGuard returns the wrapper of the log's read routes: h itself for a
// public log; for a private one, h behind the read scope of tokens. A
// private log without a token store fails closed: every request is 401.
func readGuard(private bool, tokens *auth.Store) func(echo.HandlerFunc) echo.HandlerFunc {
	if !private {
		return func(h echo.HandlerFunc) echo.HandlerFunc { return h }
	}
	if tokens == nil {
		return func(echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				c.Response().Header().Set("WWW-Authenticate", bearerChallenge)
				return fmt.Errorf("%w: this log is private and has no token store", auth.ErrUnauthenticated)
			}
		}
	}
	return func(h echo.HandlerFunc) echo.HandlerFunc {
		return requireScope(tokens, auth.ScopeRead, privateCache(h))
	}
}

// privateCache wraps h so a "public" Cache-Control it sets becomes
// "private": a response to a request with Authorization marked public may
// be stored by shared caches (RFC 9111 section 3.5) and handed to anyone.
func privateCache(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		hdr := c.Response().Header()
		c.Response().Before(func() {
			if cc := hdr.Get("Cache-Control"); strings.HasPrefix(cc, "public") {
				hdr["Cache-Control"] = []string{"private" + strings.TrimPrefix(cc, "public")}
			}
		})
		return h(c)
	}
}

// guardRead wraps a read route of the log with s's readGuard.
func (s *Server) guardRead(h echo.HandlerFunc) echo.HandlerFunc {
	if s.readGuard == nil {
		return h
	}
	return s.readGuard(h)
}
