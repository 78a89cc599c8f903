package httpapi

import (
	"container/list"
	"errors"
	"net"
	"net/netip"
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
	// maxRateClients bounds the clients tracked at once; past it, the least
	// recently seen client is forgotten (it starts again with a full
	// bucket, which errs on the side of serving). Busy clients, the ones
	// that matter, are never the least recently seen.
	maxRateClients = 1 << 16
	// ipv6PrefixBits is the IPv6 prefix one client is keyed by: one host
	// usually holds a whole /64 and can pick any address in it.
	ipv6PrefixBits = 64
)

// rateLimiter is a token bucket per client (the connection's remote
// address, an IPv6 address by its /64: X-Forwarded-For is not trusted,
// since any client can set it). Health and metrics endpoints are exempt.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	clients map[string]*list.Element // of *rateClient, by clientKey
	lru     list.List                // front: most recently seen
}

type rateClient struct {
	key string
	l   *rate.Limiter
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if burst <= 0 {
		burst = max(1, int(2*perSecond))
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, clients: make(map[string]*list.Element)}
}

// clientKey is the bucket key of a remote host: an IPv4 address as is, an
// IPv6 address by its /64 prefix, anything unparsable verbatim.
func clientKey(host string) string {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(ipv6PrefixBits)
	if err != nil {
		return host
	}
	return p.String()
}

func (r *rateLimiter) allow(host string, now time.Time) bool {
	key := clientKey(host)
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.clients[key]
	if ok {
		r.lru.MoveToFront(e)
	} else {
		if len(r.clients) >= maxRateClients {
			oldest := r.lru.Back()
			r.lru.Remove(oldest)
			delete(r.clients, oldest.Value.(*rateClient).key)
		}
		e = r.lru.PushFront(&rateClient{key: key, l: rate.NewLimiter(r.limit, r.burst)})
		r.clients[key] = e
	}
	return e.Value.(*rateClient).l.AllowN(now, 1)
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
