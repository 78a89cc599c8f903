package httpapi

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Forwarded requests carry the caller's address to the active node in a
// header a standby authenticates, so that the active node's per-client
// limits (--rate-limit) and address checks see the caller, not the standby.
// X-Forwarded-For, which anyone can send, stays untrusted.
//
//	X-Indelible-Forwarded-For: v1 ADDR UNIXSECONDS MAC
//	MAC = base64url(HMAC-SHA256(key, "v1\n" NODE "\n" ADDR "\n" UNIXSECONDS))
//
// NODE is the forwarding standby's name (X-Indelible-Forwarded-By), ADDR
// the caller's IP address as the standby's connection saw it. The key is
// derived from the master key every node of a cluster holds
// (ForwardAuthKey). The active node trusts ADDR only with a valid MAC made
// within forwardAuthSkew of its clock; otherwise it ignores the header. A
// captured header can be replayed within that window to borrow ADDR, no
// more.
const (
	forwardAuthHeader = "X-Indelible-Forwarded-For"
	forwardAuthInfo   = "indelible cluster forwarded-for v1"
	forwardAuthSkew   = 60 * time.Second
)

// ForwardAuthKey derives the key that authenticates forwarded callers'
// addresses (ClusterConfig.ForwardKey) from the master key, with HKDF-SHA256
// and an info string naming the purpose.
func ForwardAuthKey(master []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, master, nil, forwardAuthInfo, 32)
}

func forwardMAC(key []byte, node, addr, ts string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("v1\n" + node + "\n" + addr + "\n" + ts))
	return m.Sum(nil)
}

// forwardAuthValue is the header's value for a caller at addr.
func forwardAuthValue(key []byte, node, addr string, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return "v1 " + addr + " " + ts + " " + base64.RawURLEncoding.EncodeToString(forwardMAC(key, node, addr, ts))
}

// verifyForwardAuth returns the caller's address a forwarded request's
// header vouches for, if its MAC is valid for node and recent.
func verifyForwardAuth(key []byte, node, value string, now time.Time) (netip.Addr, bool) {
	f := strings.Split(value, " ")
	if len(f) != 4 || f[0] != "v1" || node == "" {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(f[1])
	if err != nil || addr.Zone() != "" || addr.String() != f[1] {
		return netip.Addr{}, false
	}
	ts, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || strconv.FormatInt(ts, 10) != f[2] {
		return netip.Addr{}, false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > forwardAuthSkew || d < -forwardAuthSkew {
		return netip.Addr{}, false
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(f[3])
	if err != nil || !hmac.Equal(mac, forwardMAC(key, node, f[1], f[2])) {
		return netip.Addr{}, false
	}
	return addr, true
}

// signForwards wraps a standby's forwarder: every forwarded request carries
// the caller's address, authenticated (any such header the caller sent is
// replaced).
func signForwards(key []byte, node string, next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		r.Header.Del(forwardAuthHeader)
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if a, perr := netip.ParseAddr(host); err == nil && perr == nil {
			r.Header.Set(forwardAuthHeader, forwardAuthValue(key, node, a.WithZone("").String(), time.Now()))
		}
		return next(c)
	}
}

// trustForwarded makes a request a standby forwarded with a valid header
// come from the caller's address (its RemoteAddr, which the rate limiter and
// the loopback checks read); the header is removed either way.
func trustForwarded(key []byte) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if v := r.Header.Get(forwardAuthHeader); v != "" {
				r.Header.Del(forwardAuthHeader)
				if a, ok := verifyForwardAuth(key, r.Header.Get(forwardedHeader), v, time.Now()); ok {
					r.RemoteAddr = netip.AddrPortFrom(a, 0).String()
				}
			}
			return next(c)
		}
	}
}
