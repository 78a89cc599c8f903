package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"indelible.dev/api"
	"indelible.dev/audited"
	"indelible.dev/auth"
)

// The token routes (admin scope).
const (
	routeTokens = "/v1/tokens"
	routeToken  = "/v1/tokens/:name"
)

// maxTokenRequest bounds a POST /v1/tokens body.
const maxTokenRequest = 4 << 10

// tokenHandlers serves the admin routes: the token changes, and their
// records in the log, are the audit service's (package audited).
type tokenHandlers struct {
	svc *audited.Service
}

// mountTokens registers the token routes on s.
func (s *Server) mountTokens(svc *audited.Service) {
	h := &tokenHandlers{svc: svc}
	tokens := svc.Tokens()
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
	req, err := parseTokenRequest(body)
	if err != nil {
		return err
	}
	scopes := make([]auth.Scope, len(req.Scopes))
	for i, sc := range req.Scopes {
		scopes[i] = auth.Scope(sc)
	}
	tok, secret, err := h.svc.CreateToken(c.Request().Context(), requestToken(c).Name, req.Name, scopes)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, api.NewToken{Token: wireToken(tok), Secret: secret})
}

// parseTokenRequest parses a POST /v1/tokens body.
func parseTokenRequest(body []byte) (api.TokenRequest, error) {
	var req api.TokenRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return api.TokenRequest{}, fmt.Errorf("%w: token request: %v (want {\"name\":...,\"scopes\":[...]})", auth.ErrInvalid, err)
	}
	if dec.More() {
		return api.TokenRequest{}, fmt.Errorf("%w: token request: data after the JSON object", auth.ErrInvalid)
	}
	return req, nil
}

func (h *tokenHandlers) serveList(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	list := h.svc.Tokens().List()
	reply := api.TokenList{Tokens: make([]api.Token, len(list))}
	for i, t := range list {
		reply.Tokens[i] = wireToken(t)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, reply)
}

func (h *tokenHandlers) serveRevoke(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	if _, err := h.svc.RevokeToken(c.Request().Context(), requestToken(c).Name, c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// wireToken is t's public record on the wire.
func wireToken(t auth.Token) api.Token {
	scopes := make([]string, len(t.Scopes))
	for i, sc := range t.Scopes {
		scopes[i] = string(sc)
	}
	return api.Token{Name: t.Name, Scopes: scopes, Created: t.Created, LastUsed: t.LastUsed, Revoked: t.Revoked, Expires: t.Expires, Bootstrap: t.Bootstrap}
}
