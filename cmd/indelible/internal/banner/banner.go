// Package banner prints what indelible serve tells the operator at start:
// what is running, where, and commands to paste.
package banner

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Info is what the banner shows.
type Info struct {
	Mode string // "events" or "raw"
	Addr string // the listener's address
	TLS  bool   // served over HTTPS
	// PrivateLog: the checkpoint, tiles and proofs need a read token.
	PrivateLog bool
	Origin     string
	VKey       string // the log's verifier key
	DataDir    string
	Size       int64 // the published tree size
	// KeyFile and PubFile are the signer and verifier key files when this
	// start created the key ("" otherwise).
	KeyFile, PubFile string
	// AdminTokenFile holds the first admin token (events mode); AdminToken
	// is the token itself when this start created it ("" otherwise).
	AdminTokenFile, AdminToken string
	// AdminTokenExpires is when AdminToken, a bootstrap token, expires.
	AdminTokenExpires time.Time
	// MasterKeyFile is the master key file when this start created it.
	MasterKeyFile string
	// MasterKeyInData is the master key file when it is inside the data
	// directory (an earlier version's), and MasterKeyMoveTo where it goes.
	MasterKeyInData, MasterKeyMoveTo string
}

// PrivateCANote is the line a banner of a server with TLS ends with.
const PrivateCANote = "  (if the certificate is from a private CA: add --cacert CA.pem to curl, --ca CA.pem to indelible commands)"

// Print writes the banner of in to w.
func Print(w io.Writer, in Info) {
	url := "http://" + in.Addr
	if in.TLS {
		url = "https://" + in.Addr
	}
	keyNote := ""
	if in.KeyFile != "" {
		keyNote = fmt.Sprintf("\n  new key:      signer %s (0600, keep it secret), verifier %s", in.KeyFile, in.PubFile)
	}
	title, tokenNote := "Indelible log (mode "+in.Mode+")", ""
	if in.Mode == "events" {
		title = "Indelible audit ledger (mode events)"
		if in.AdminToken != "" {
			tokenNote = fmt.Sprintf("\n  admin token:  %s\n                (shown once; also written to %s, 0600)", in.AdminToken, in.AdminTokenFile)
			tokenNote += fmt.Sprintf("\n                a bootstrap token: it expires at %s, or as soon as another admin token is made."+
				"\n                Create your own (indelible token create --name NAME --scope admin), keep it out of"+
				"\n                the data directory, and delete %s.",
				in.AdminTokenExpires.UTC().Format(time.RFC3339), ShellQuote(in.AdminTokenFile))
		}
		if in.MasterKeyFile != "" {
			tokenNote += fmt.Sprintf("\n  master key:   %s (new, 0600), beside the data directory, not in it: keep it (without\n                it the events cannot be read back), and keep it out of the data directory's backups", in.MasterKeyFile)
		}
		if in.MasterKeyInData != "" {
			tokenNote += fmt.Sprintf("\n  WARNING:      the master key %s is inside the data directory: a copy of the directory\n                can read every event. Stop the server, move it beside the directory and restart:\n                  mv %s %s\n                (or pass --allow-key-in-data to keep it there)",
				in.MasterKeyInData, ShellQuote(in.MasterKeyInData), ShellQuote(in.MasterKeyMoveTo))
		}
		tokenNote += fmt.Sprintf("\n  console:      open %s/ in a browser and sign in with a token", url)
		if in.PrivateLog {
			tokenNote += "\n  private log:  the checkpoint, tiles, proofs and /metrics need a token with the read scope"
		}
	}
	fmt.Fprintf(w, `%s
  origin:       %s
  verifier key: %s%s
  data:         %s (tree size %d)
  listening on  %s%s

Try:
`, title, in.Origin, in.VKey, keyNote, in.DataDir, in.Size, url, tokenNote)
	if in.Mode == "events" {
		// On a quiet log the first curl's event gets the index that is
		// the tree size now (event 0 records the first admin token).
		auth := fmt.Sprintf(`-H "Authorization: Bearer $(cat %s)"`, ShellQuote(in.AdminTokenFile))
		fmt.Fprintf(w, `  curl %[2]s -H 'Content-Type: application/json' -d '{"action":"demo.hello"}' %[1]s/v1/events
  curl %[2]s '%[1]s/v1/events?action=demo.hello'
  curl %[2]s %[1]s/v1/events/%[4]d/receipt > receipt.txt
  indelible verify receipt.txt --key '%[3]s'
`, url, auth, in.VKey, in.Size)
	} else {
		fmt.Fprintf(w, `  curl --data-binary 'hello, log' %[1]s/add
  curl %[1]s/checkpoint
  curl -s %[1]s/tile/entries/000.p/1 | od -An -c
  curl '%[1]s/v1/proof/inclusion?index=0&size=1'
`, url)
	}
	env := ""
	if in.PrivateLog {
		env = fmt.Sprintf("INDELIBLE_TOKEN=$(cat %s) ", ShellQuote(in.AdminTokenFile))
	}
	if in.TLS {
		fmt.Fprintln(w, PrivateCANote)
	}
	// Last: tests and scripts wait for this line.
	fmt.Fprintf(w, "  %sindelible checkpoint --url %s --key '%s'\n", env, url, in.VKey)
}

// ShellQuote quotes s for a POSIX shell if it needs it.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
