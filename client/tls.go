package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// MaxCAFile bounds a CA file read by LoadCA.
const MaxCAFile = 1 << 20

// LoadCA reads file, one or more PEM certificates of certificate authorities,
// and returns a pool holding exactly them. Used as Options.RootCAs (or with
// NewTransport), the pool replaces the system's roots: only these
// authorities are trusted, so a certificate from any public CA is refused.
// To trust a private CA and the public ones, put both in the file.
func LoadCA(file string) (*x509.CertPool, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("client: reading CA file: %w", err)
	}
	if fi.Size() > MaxCAFile {
		return nil, fmt.Errorf("client: CA file %s is larger than %d bytes", file, MaxCAFile)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("client: reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("client: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// NewTransport returns a transport like http.DefaultTransport (proxy from
// the environment, keep-alives, HTTP/2 when the server offers it) that
// requires TLS 1.2 or later and trusts rootCAs for HTTPS (nil: the
// system's roots). Each call returns a new transport with its own
// connection pool.
func NewTransport(rootCAs *x509.CertPool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// A custom TLS config is fine for HTTP/2: the clone keeps
	// ForceAttemptHTTP2, which offers h2 whatever TLSClientConfig says.
	t.TLSClientConfig = &tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12}
	return t
}

// IsCertificateError reports whether err is, or wraps, a failure to verify
// a server's certificate: an unknown authority, a name mismatch, an expired
// or otherwise invalid certificate. Such a failure is final: the client
// never retries it (the next attempt would fail the same way).
func IsCertificateError(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		inv x509.CertificateInvalidError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &inv)
}
