package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

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
	tok, secret, err := h.svc.CreateToken(c.Request().Context(), requestToken(c).Name, req.Name, req.Scopes)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, TokenCreated{Token: tok, Secret: secret})
}

// parseTokenRequest parses a POST /v1/tokens body.
func parseTokenRequest(body []byte) (TokenRequest, error) {
	var req TokenRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return TokenRequest{}, fmt.Errorf("%w: token request: %v (want {\"name\":...,\"scopes\":[...]})", auth.ErrInvalid, err)
	}
	if dec.More() {
		return TokenRequest{}, fmt.Errorf("%w: token request: data after the JSON object", auth.ErrInvalid)
	}
	return req, nil
}

func (h *tokenHandlers) serveList(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	list := h.svc.Tokens().List()
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
	if _, err := h.svc.RevokeToken(c.Request().Context(), requestToken(c).Name, c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
