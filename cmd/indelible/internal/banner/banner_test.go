package banner

import (
	"strings"
	"testing"
	"time"
)

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"data/admin.token": "data/admin.token", "my dir/x": `'my dir/x'`, "it's": `'it'\''s'`, "": "''"} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrint(t *testing.T) {
	var b strings.Builder
	Print(&b, Info{Mode: "raw", Addr: "127.0.0.1:1", Origin: "o", VKey: "o+1+AA", DataDir: "d", Size: 3})
	out := b.String()
	if !strings.HasPrefix(out, "Indelible log (mode raw)\n") || !strings.Contains(out, "curl --data-binary 'hello, log' http://127.0.0.1:1/add") ||
		strings.Contains(out, "new key") || !strings.HasSuffix(out, "indelible checkpoint --url http://127.0.0.1:1 --key 'o+1+AA'\n") {
		t.Errorf("raw banner:\n%s", out)
	}
	b.Reset()
	Print(&b, Info{Mode: "events", Addr: "h:1", TLS: true, Origin: "o", VKey: "v", DataDir: "d", KeyFile: "d/log.key", PubFile: "d/log.pub",
		AdminTokenFile: "my d/admin.token", AdminToken: "tok", Size: 1})
	out = b.String()
	for _, want := range []string{"Indelible audit ledger (mode events)\n", "new key:      signer d/log.key", "listening on  https://h:1\n  admin token:  tok\n",
		`Bearer $(cat 'my d/admin.token')`, "https://h:1/v1/events/1/receipt > receipt.txt", "indelible verify receipt.txt --key 'v'", "console:      open https://h:1/ in a browser"} {
		if !strings.Contains(out, want) {
			t.Errorf("events banner lacks %q:\n%s", want, out)
		}
	}
}

// TestPrintTLSPrivate: a TLS server's banner tells how to trust a private
// CA; a private log's checkpoint command carries the admin token.
func TestPrintTLSPrivate(t *testing.T) {
	var b strings.Builder
	Print(&b, Info{Mode: "events", Addr: "h:1", TLS: true, PrivateLog: true, Origin: "o", VKey: "v", DataDir: "d", AdminTokenFile: "d/admin.token"})
	out := b.String()
	for _, want := range []string{"--cacert CA.pem", "--ca CA.pem", "INDELIBLE_TOKEN=$(cat d/admin.token) indelible checkpoint --url https://h:1", "private log:"} {
		if !strings.Contains(out, want) {
			t.Errorf("TLS private banner lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	Print(&b, Info{Mode: "events", Addr: "h:1", Origin: "o", VKey: "v", DataDir: "d", AdminTokenFile: "d/admin.token"})
	if out := b.String(); strings.Contains(out, "CA.pem") || strings.Contains(out, "INDELIBLE_TOKEN") || strings.Contains(out, "private log") {
		t.Errorf("plain public banner mentions TLS or a private log:\n%s", out)
	}
}

// TestPrintKeys: the first start's banner says the admin token is a
// bootstrap token (when it expires, how to replace it) and where the new
// master key is; a master key inside the data directory gets a warning
// with the command that moves it.
func TestPrintKeys(t *testing.T) {
	var b strings.Builder
	exp := time.Date(2026, 12, 8, 14, 0, 0, 0, time.UTC)
	Print(&b, Info{Mode: "events", Addr: "h:1", Origin: "o", VKey: "v", DataDir: "d", AdminTokenFile: "d/admin.token", AdminToken: "tok",
		AdminTokenExpires: exp, MasterKeyFile: "d.master.key"})
	out := b.String()
	for _, want := range []string{"bootstrap token: it expires at 2026-12-08T14:00:00Z", "indelible token create --name NAME --scope admin",
		"delete d/admin.token", "master key:   d.master.key (new, 0600)"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("banner warns:\n%s", out)
	}
	b.Reset()
	Print(&b, Info{Mode: "events", Addr: "h:1", Origin: "o", VKey: "v", DataDir: "my d", AdminTokenFile: "my d/admin.token",
		MasterKeyInData: "my d/master.key", MasterKeyMoveTo: "my d.master.key"})
	out = b.String()
	for _, want := range []string{"WARNING:      the master key my d/master.key is inside the data directory", "mv 'my d/master.key' 'my d.master.key'", "--allow-key-in-data"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "bootstrap") || strings.Contains(out, "master key:") {
		t.Errorf("restart banner mentions a new token or key:\n%s", out)
	}
}
