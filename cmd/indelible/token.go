package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"indelible.dev/client"
)

func init() {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (needs an admin token)",
	}
	var name, scopes string
	create := &cobra.Command{
		Use:   "create --name NAME --scope append,read",
		Short: "Create a token; it is printed alone on the last line, once",
		Args:  cobra.NoArgs,
		RunE: api.runE(func(cmd *cobra.Command, args []string, c *client.Client) error {
			t, err := c.CreateToken(cmd.Context(), name, strings.Split(scopes, ","))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created token %q with scopes %s (shown once: keep it)\n%s\n", t.Name, strings.Join(t.Scopes, ","), t.Secret)
			return nil
		}),
	}
	create.Flags().StringVar(&name, "name", "", "token name (1-64 of A-Z a-z 0-9 . _ @ -); events it writes are submitted_by this name")
	create.Flags().StringVar(&scopes, "scope", "", "scopes, comma-separated: append, read, admin (admin implies the others)")
	create.MarkFlagRequired("name")
	create.MarkFlagRequired("scope")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (names, scopes, dates; never the secrets)",
		Args:  cobra.NoArgs,
		RunE: api.runE(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ts, err := c.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPES\tCREATED\tLAST USED\tREVOKED\tEXPIRES")
			for _, t := range ts {
				exp := when(t.Expires)
				if t.Bootstrap {
					exp += " (bootstrap: or once a newer admin token exists)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, strings.Join(t.Scopes, ","), when(t.Created), when(t.LastUsed), when(t.Revoked), exp)
			}
			return tw.Flush()
		}),
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token, at once",
		Args:  cobra.ExactArgs(1),
		RunE: api.runE(func(cmd *cobra.Command, args []string, c *client.Client) error {
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked token %q\n", args[0])
			return nil
		}),
	}
	for _, sub := range []*cobra.Command{create, list, revoke} {
		api.register(sub)
		cmd.AddCommand(sub)
	}
	rootCmd.AddCommand(cmd)
}

// when formats a time for a table; "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
