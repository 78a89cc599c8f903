package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/spf13/pflag"

	"indelible.dev/client"
	"indelible.dev/cmd/indelible/internal/banner"
)

// tlsFlags are the HTTPS flags of the servers (serve, witness): --tls-cert
// and --tls-key to serve HTTPS, --ca for the servers they reach over HTTPS.
type tlsFlags struct {
	cert, key string
	ca        string // CAs trusted for outgoing HTTPS; "" means the system's
}

// register adds --tls-cert, --tls-key and --ca to fs; caFor names whom the
// server reaches with --ca (e.g. "witnesses").
func (f *tlsFlags) register(fs *pflag.FlagSet, caFor string) {
	fs.StringVar(&f.cert, "tls-cert", "", "serve HTTPS with this certificate chain (PEM file; requires --tls-key)")
	fs.StringVar(&f.key, "tls-key", "", "private key of --tls-cert (PEM file)")
	fs.StringVar(&f.ca, "ca", "", "PEM file of the certificate authorities trusted, instead of the system's, for "+caFor+" served over HTTPS")
}

// load returns the server TLS configuration (nil for plain HTTP, see
// config) and the certificate authorities of --ca (nil: the system's).
func (f tlsFlags) load() (*tls.Config, *x509.CertPool, error) {
	c, err := f.config()
	if err != nil {
		return nil, nil, err
	}
	var pool *x509.CertPool
	if f.ca != "" {
		if pool, err = client.LoadCA(f.ca); err != nil {
			return nil, nil, fmt.Errorf("--ca: %w", err)
		}
	}
	return c, pool, nil
}

// config returns the server TLS configuration of the flags, or nil for
// plain HTTP. Both files or neither: one alone is an error.
//
// TLS 1.2 is the minimum (1.3 is preferred when the client offers it, Go's
// default). NextProtos offers h2 first: http.Server.ServeTLS then serves
// HTTP/2 and falls back to HTTP/1.1 for clients without it.
func (f tlsFlags) config() (*tls.Config, error) {
	if (f.cert == "") != (f.key == "") {
		return nil, errors.New("--tls-cert and --tls-key go together: give both (HTTPS) or neither (plain HTTP)")
	}
	if f.cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		// The error names the files and the problem, never key bytes.
		return nil, fmt.Errorf("loading the TLS certificate --tls-cert %s --tls-key %s: %w", f.cert, f.key, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// serveFunc returns the function serving hs on ln: HTTPS when hs.TLSConfig
// is set (the certificate is in it), else plain HTTP.
func serveFunc(hs *http.Server, ln net.Listener) func() error {
	if hs.TLSConfig != nil {
		return func() error { return hs.ServeTLS(ln, "", "") }
	}
	return func() error { return hs.Serve(ln) }
}

// scheme returns the URL scheme of a server with TLS configuration c.
func scheme(c *tls.Config) string {
	if c != nil {
		return "https"
	}
	return "http"
}

// caNote is the banner's line for a server with TLS configuration c: what
// clients need when its certificate is from a private CA.
func caNote(c *tls.Config) string {
	if c == nil {
		return ""
	}
	return banner.PrivateCANote + "\n"
}
