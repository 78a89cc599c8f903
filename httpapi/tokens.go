package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"indelible.dev/auth"
	"indelible.dev/event"
	"indelible.dev/events"
)

// The token routes (admin scope).
const (
	routeTokens = "/v1/tokens"
	routeToken  = "/v1/tokens/:name"
)

// maxTokenRequest bounds a POST /v1/tokens body.
const maxTokenRequest = 4 << 10

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Name   string       `json:"name"`
	Scopes []auth.Scope `json:"scopes"`
}

// TokenCreated is the reply of POST /v1/tokens: the token's public record and
// its secret, which is shown this once and never again.
type TokenCreated struct {
	auth.Token
	Secret string `json:"token"`
}

// TokenList is the reply of GET /v1/tokens: every token's public record.
type TokenList struct {
	Tokens []auth.Token `json:"tokens"`
}

// tokenHandlers serves the admin routes over one token store.
type tokenHandlers struct {
	tokens *auth.Store
	// l records token changes as events (auth.Event); nil without an
	// events layer.
	l *events.Layer
}

// mountTokens registers the token routes on s.
func (s *Server) mountTokens(tokens *auth.Store) {
	h := &tokenHandlers{tokens: tokens}
	if s.reads != nil {
		h.l = s.reads.l
	}
	s.route(http.MethodPost, routeTokens, requireScope(tokens, auth.ScopeAdmin, h.serveCreate))
	s.route(http.MethodGet, routeTokens, requireScope(tokens, auth.ScopeAdmin, h.serveList))
	s.route(http.MethodDelete, routeToken, requireScope(tokens, auth.ScopeAdmin, h.serveRevoke))
}

func (h *tokenHandlers) serveCreate(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxTokenRequest+1))
	if err != nil {
		return fmt.Errorf("%w: reading body: %v", errBadRequest, err)
	}
	if len(body) > maxTokenRequest {
		return fmt.Errorf("%w: token request larger than %d bytes", errTooLarge, maxTokenRequest)
	}
	created, err := h.processCreate(c.Request().Context(), requestToken(c).Name, body)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, created)
}

// processCreate creates the token a POST /v1/tokens body asks for, as the
// admin token named by, and records it in the log. If the record cannot be
// appended the new token is revoked at once and the request fails: no token
// exists that the log does not show being created.
func (h *tokenHandlers) processCreate(ctx context.Context, by string, body []byte) (TokenCreated, error) {
	var req TokenRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return TokenCreated{}, fmt.Errorf("%w: token request: %v (want {\"name\":...,\"scopes\":[...]})", auth.ErrInvalid, err)
	}
	if dec.More() {
		return TokenCreated{}, fmt.Errorf("%w: token request: data after the JSON object", auth.ErrInvalid)
	}
	tok, secret, err := h.tokens.Create(req.Name, req.Scopes)
	if err != nil {
		return TokenCreated{}, fmt.Errorf("creating token %q: %w", req.Name, err)
	}
	if err := h.record(ctx, auth.ActionCreate, by, tok); err != nil {
		if rerr := h.tokens.Revoke(tok.Name); rerr != nil {
			return TokenCreated{}, fmt.Errorf("creating token %q: %w (and revoking it again: %w)", req.Name, err, rerr)
		}
		return TokenCreated{}, fmt.Errorf("creating token %q (revoked again): %w", req.Name, err)
	}
	return TokenCreated{Token: tok, Secret: secret}, nil
}

func (h *tokenHandlers) serveList(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	list := h.tokens.List()
	if list == nil {
		list = []auth.Token{}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, TokenList{Tokens: list})
}

func (h *tokenHandlers) serveRevoke(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	name := c.Param("name")
	if err := h.tokens.Revoke(name); err != nil {
		return fmt.Errorf("revoking token %q: %w", name, err)
	}
	// The revocation holds whatever happens next; if recording it fails
	// the client is told, and revoking again (a no-op) records it then.
	tok, err := h.tokens.Get(name)
	if err != nil {
		return fmt.Errorf("revoking token %q: %w", name, err)
	}
	if err := h.record(c.Request().Context(), auth.ActionRevoke, requestToken(c).Name, tok); err != nil {
		return fmt.Errorf("token %q is revoked, but %w", name, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// record appends the event of action on tok, done by the token named by, and
// waits for it to be durable.
func (h *tokenHandlers) record(ctx context.Context, action, by string, tok auth.Token) error {
	if h.l == nil {
		return nil
	}
	if _, err := h.l.Append(ctx, by, []event.Event{auth.Event(action, by, tok)}); err != nil {
		return fmt.Errorf("recording %s of %q in the log: %w", action, tok.Name, err)
	}
	return nil
}
