package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
)

// Key file permissions: signer keys are secrets.
const (
	signerKeyPerm   = 0o600
	verifierKeyPerm = 0o644
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
			vkey, err := generateKey(name, out, pub, force)
			if err != nil {
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

// generateKey creates a key pair named name, writes the signer key to skeyFile
// (0600, refusing to overwrite unless force) and, if vkeyFile is set, the
// verifier key there, and returns the verifier key.
func generateKey(name, skeyFile, vkeyFile string, force bool) (string, error) {
	// c2sp.org/signed-note: key names are non-empty, with no spaces and no "+".
	if name == "" || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsSpace) || strings.Contains(name, "+") {
		return "", fmt.Errorf("key name %q: want a non-empty name without spaces or \"+\" (e.g. example.com/log)", name)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("generating key %q: %w", name, err)
	}
	if err := writeKeyFile(skeyFile, skey+"\n", signerKeyPerm, force); err != nil {
		return "", err
	}
	if vkeyFile != "" {
		if err := writeKeyFile(vkeyFile, vkey+"\n", verifierKeyPerm, force); err != nil {
			return "", err
		}
	}
	return vkey, nil
}

// writeKeyFile writes data to file with perm, creating it exclusively unless
// force is set.
func writeKeyFile(file, data string, perm fs.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(file, flags, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists (use --force to overwrite)", file)
	}
	if err != nil {
		return err
	}
	// OpenFile applies perm only on creation: make sure an overwritten file
	// is not left readable by others.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadSigner reads a signer key file (x/mod note format) and returns the
// signer and its verifier key.
func loadSigner(file string) (note.Signer, string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("reading signer key: %w", err)
	}
	skey := strings.TrimSpace(string(b))
	signer, err := note.NewSigner(skey)
	if err != nil {
		// The error of note.NewSigner does not include the key.
		return nil, "", fmt.Errorf("signer key %s: %w", file, err)
	}
	vkey, err := verifierKeyOf(skey)
	if err != nil {
		return nil, "", fmt.Errorf("signer key %s: %w", file, err)
	}
	return signer, vkey, nil
}

// verifierKeyOf derives the verifier key of an Ed25519 signer key
// "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>".
func verifierKeyOf(skey string) (string, error) {
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		return "", errors.New("not a signer key")
	}
	// Names never contain "+"; the base64 key may.
	name, rest, _ := strings.Cut(rest, "+")
	_, key64, ok := strings.Cut(rest, "+")
	if !ok {
		return "", errors.New("malformed signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("malformed signer key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}
