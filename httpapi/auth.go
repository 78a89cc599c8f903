package httpapi

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"indelible.dev/auth"
)

// tokenKey is the echo.Context key under which requireScope stores the
// authenticated auth.Token.
const tokenKey = "indelible.token"

// bearerChallenge is the WWW-Authenticate value sent with every 401
// (RFC 6750 section 3).
const bearerChallenge = `Bearer realm="indelible"`

// requireScope wraps h so it runs only for a request carrying
// "Authorization: Bearer <token>" of a live token holding scope (admin
// implies every scope). No token, an unknown or a revoked one is 401 with a
// Bearer challenge; a token without the scope is 403. The token itself is
// never logged nor echoed in an error.
func requireScope(tokens *auth.Store, scope auth.Scope, h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		secret, ok := bearerToken(c.Request().Header.Get("Authorization"))
		if !ok {
			c.Response().Header().Set("WWW-Authenticate", bearerChallenge)
			return fmt.Errorf("%w: send Authorization: Bearer <token>", auth.ErrUnauthenticated)
		}
		tok, err := tokens.Authenticate(secret)
		if err != nil {
			c.Response().Header().Set("WWW-Authenticate", bearerChallenge)
			return err
		}
		// Per-token rate limit, once the token is known: 429 naming the
		// limit, with Retry-After rounded up to whole seconds.
		if err := tokens.Allow(tok.Name); err != nil {
			var rl *auth.RateLimitError
			if errors.As(err, &rl) {
				c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(rl.RetryAfter.Seconds())))))
			}
			return err
		}
		if !tok.Allows(scope) {
			c.Response().Header().Set("WWW-Authenticate", bearerChallenge+`, error="insufficient_scope", scope="`+string(scope)+`"`)
			return fmt.Errorf("%w: token %q has scopes %v, this needs %q", auth.ErrForbidden, tok.Name, tok.Scopes, scope)
		}
		c.Set(tokenKey, tok)
		return h(c)
	}
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header value (the scheme is case-insensitive, RFC 9110 section 11.1).
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// requestToken returns the token requireScope authenticated.
func requestToken(c echo.Context) auth.Token {
	tok, _ := c.Get(tokenKey).(auth.Token)
	return tok
}
