package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"indelible.dev/client"
)

// Environment variables of the client commands; their flags override them.
const (
	envURLVar   = "INDELIBLE_URL"
	envTokenVar = "INDELIBLE_TOKEN"
	envCAVar    = "INDELIBLE_CA"
)

// apiFlags are the connection flags of the events client commands (append,
// query, tail, token, erase): --url, --token and --ca override
// $INDELIBLE_URL, $INDELIBLE_TOKEN and $INDELIBLE_CA.
type apiFlags struct {
	url, token, ca string
}

func (a *apiFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.url, "url", "", "server URL (default $"+envURLVar+", or "+defaultURL+")")
	f.StringVar(&a.token, "token", "", "API token (default $"+envTokenVar+")")
	caFlag(f, &a.ca)
}

// client returns the API client the flags and environment describe.
func (a *apiFlags) client() (*client.Client, error) {
	if a.url == "" {
		a.url = envURL()
	}
	if a.token == "" {
		a.token = os.Getenv(envTokenVar)
	}
	if a.token == "" {
		return nil, errors.New("no token: set " + envTokenVar + " or pass --token (the first admin token is in <data>/admin.token)")
	}
	pool, err := caPool(a.ca)
	if err != nil {
		return nil, err
	}
	return client.New(a.url, "", client.WithOptions(client.Options{Token: a.token, RootCAs: pool}))
}

// runE is the RunE of a client command: run, given the API client of the
// flags.
func (a *apiFlags) runE(run func(cmd *cobra.Command, args []string, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		return run(cmd, args, c)
	}
}

// caFlag registers --ca on f, for a command that talks HTTPS.
func caFlag(f *pflag.FlagSet, file *string) {
	f.StringVar(file, "ca", "", "PEM file of the certificate authorities to trust for HTTPS, instead of the system's (default $"+envCAVar+")")
}

// caPool returns the certificate authorities of --ca file, or of the file
// $INDELIBLE_CA names, as the only roots trusted for HTTPS; nil (the
// system's roots) when neither is set.
func caPool(file string) (*x509.CertPool, error) {
	flag := "--ca"
	if file == "" {
		file, flag = os.Getenv(envCAVar), "$"+envCAVar
	}
	if file == "" {
		return nil, nil
	}
	pool, err := client.LoadCA(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return pool, nil
}

// envToken returns token, or $INDELIBLE_TOKEN if token is empty. Commands
// that read the log's public routes send it only if set: a log run with
// --private-log needs a token with the read scope.
func envToken(token string) string {
	if token == "" {
		return os.Getenv(envTokenVar)
	}
	return token
}

// certificateHint adds to a failure to verify a server's certificate what
// to do about it.
func certificateHint(err error) error {
	if !client.IsCertificateError(err) {
		return err
	}
	return fmt.Errorf("%w\n(the server's TLS certificate is not trusted: pass --ca FILE, or set %s, naming a PEM file of the certificate authority that issued it)", err, envCAVar)
}

// untilSignal is the RunE of a server command: run until SIGINT or SIGTERM
// cancels ctx, then shut down gracefully.
func untilSignal(run func(ctx context.Context, out io.Writer) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return run(ctx, cmd.OutOrStdout())
	}
}
