package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"indelible.dev/client"
)

// apiFlags are the connection flags of the events client commands (append,
// query, tail, token): --url and --token override $INDELIBLE_URL and
// $INDELIBLE_TOKEN; --ca trusts a private CA for HTTPS.
type apiFlags struct {
	url, token, ca string
}

func (a *apiFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.url, "url", "", "server URL (default $INDELIBLE_URL, or "+defaultURL+")")
	f.StringVar(&a.token, "token", "", "API token (default $INDELIBLE_TOKEN)")
	f.StringVar(&a.ca, "ca", "", "PEM file of a certificate authority to trust for HTTPS")
}

// client returns the API client the flags and environment describe.
func (a *apiFlags) client() (*client.Client, error) {
	if a.url == "" {
		a.url = envURL()
	}
	if a.token == "" {
		a.token = os.Getenv("INDELIBLE_TOKEN")
	}
	if a.token == "" {
		return nil, errors.New("no token: set INDELIBLE_TOKEN or pass --token (the first admin token is in <data>/admin.token)")
	}
	opts := client.Options{Token: a.token}
	if a.ca != "" {
		pem, err := os.ReadFile(a.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		opts.RootCAs = x509.NewCertPool()
		if !opts.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", a.ca)
		}
	}
	return client.New(a.url, opts)
}
