package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/spf13/cobra"

	"indelible.dev/cmd/indelible/internal/keyfile"
)

func init() {
	var out, pub string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen NAME",
		Short: "Generate an Ed25519 note key pair named NAME (a log origin or witness name)",
		Long: `keygen generates an Ed25519 signed-note key pair (c2sp.org/signed-note, the
golang.org/x/mod/sumdb/note format). It writes the signer key to --out with
mode 0600 and prints the verifier key, which is public. For a log, NAME is the
origin (e.g. example.com/log).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if out == "" {
				out = path.Base(name) + ".key"
			}
			vkey, err := keyfile.Generate(name, out, pub, force)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w (use --force to overwrite)", err)
			} else if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), vkey)
			fmt.Fprintf(cmd.ErrOrStderr(), "signer key written to %s (keep it secret)\n", out)
			if pub != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "verifier key written to %s\n", pub)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "signer key file, written 0600 (default: <last element of NAME>.key)")
	cmd.Flags().StringVar(&pub, "pub", "", "also write the verifier key to this file")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	rootCmd.AddCommand(cmd)
}
