package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"indelible.dev/alert"
	"indelible.dev/cmd/indelible/internal/exitcode"
)

func init() {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Check alert rules files and run their inline tests",
		Long: `rules checks the alert rules that serve --rules loads (docs/alerts.md).

  indelible rules check FILE|DIR   parse and validate: unknown fields, bad
                                   durations, bad CEL (compiled and
                                   type-checked), unknown notifiers and
                                   duplicate names are refused, naming the line
  indelible rules test FILE|DIR    check, then run every rule's inline tests

Both exit 0 when all is well, 1 when the rules (or a test) are wrong, 2 on
trouble (usage, unreadable file).`,
	}
	check := &cobra.Command{
		Use:   "check FILE|DIR",
		Short: "Validate a rules file (or a directory of them)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := loadRules(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok: %d rules, %d notifiers\n", args[0], len(rs.Rules), len(rs.Notifiers))
			return nil
		},
	}
	test := &cobra.Command{
		Use:   "test FILE|DIR",
		Short: "Validate a rules file and run its rules' inline tests",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := loadRules(args[0])
			if err != nil {
				return err
			}
			failed := 0
			results := alert.RunTests(rs)
			for _, r := range results {
				if r.Err != nil {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "FAIL %s / %s: %v\n", r.Rule, r.Test, r.Err)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "ok   %s / %s: %d firings %q\n", r.Rule, r.Test, r.Fires, r.Groups)
				}
			}
			if failed > 0 {
				return &exitcode.Error{Code: exitFailure, Err: fmt.Errorf("%d of %d rule tests failed", failed, len(results))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d rule tests passed\n", len(results))
			return nil
		},
	}
	cmd.AddCommand(check, test)
	rootCmd.AddCommand(cmd)
}

// loadRules loads a rules file or directory; invalid rules exit 1.
func loadRules(path string) (*alert.Rules, error) {
	rs, err := alert.LoadPath(path)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return nil, &exitcode.Error{Code: exitTrouble, Err: err}
	case err != nil:
		return nil, &exitcode.Error{Code: exitFailure, Err: err}
	}
	return rs, nil
}
