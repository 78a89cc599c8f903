package httpapi

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// errRateLimited is returned to a client over its request rate (429 with
// Retry-After).
var errRateLimited = errors.New("too many requests from this client, slow down")

// Rate limiting bookkeeping bounds.
const (
	// maxRateClients bounds the clients tracked at once; past it, the
	// idlest half is forgotten (a forgotten client starts with a full
	// bucket, which errs on the side of serving).
	maxRateClients = 1 << 16
	// rateIdle is how long an untouched client is kept.
	rateIdle = 5 * time.Minute
)

// rateLimiter is a token bucket per client IP address (the connection's
// remote address: X-Forwarded-For is not trusted, since any client can set
// it). Health and metrics endpoints are exempt.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	clients map[string]*rateClient
}

type rateClient struct {
	l    *rate.Limiter
	seen time.Time
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if burst <= 0 {
		burst = max(1, int(2*perSecond))
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, clients: make(map[string]*rateClient)}
}

func (r *rateLimiter) allow(ip string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.clients[ip]
	if !ok {
		if len(r.clients) >= maxRateClients {
			r.evict(now)
		}
		c = &rateClient{l: rate.NewLimiter(r.limit, r.burst)}
		r.clients[ip] = c
	}
	c.seen = now
	return c.l.AllowN(now, 1)
}

// evict forgets idle clients, or every client if none is idle.
func (r *rateLimiter) evict(now time.Time) {
	for ip, c := range r.clients {
		if now.Sub(c.seen) > rateIdle {
			delete(r.clients, ip)
		}
	}
	if len(r.clients) >= maxRateClients {
		clear(r.clients)
	}
}

// middleware rejects requests over the client's rate with errRateLimited.
func (r *rateLimiter) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Path() {
		case "/healthz", "/readyz", "/metrics":
			return next(c)
		}
		ip, _, err := net.SplitHostPort(c.Request().RemoteAddr)
		if err != nil {
			ip = c.Request().RemoteAddr
		}
		if !r.allow(ip, time.Now()) {
			return errRateLimited
		}
		return next(c)
	}
}
