package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"indelible.dev/client"
	itlog "indelible.dev/tlog"
)

// TestBundleEndToEnd: indelible bundle fetches byte-identical bundles from
// the real server (with an erased entry), and indelible verify-bundle
// checks them with the server stopped; a tampered bundle exits 1, garbage 2.
func TestBundleEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startEvents(t, dir)
	c := p.client(t)
	ctx := context.Background()
	var nd bytes.Buffer
	for k := range 60 {
		fmt.Fprintf(&nd, `{"action":"login","actor":{"id":"user-%d"},"outcome":"%s"}`+"\n", k%4, []string{"success", "denied"}[k%2])
	}
	res, err := c.AppendNDJSON(ctx, nd.Bytes(), true)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, p.env(), "erase", strconv.FormatInt(res[10].Index, 10), "--reason", "GDPR request 42")
	_, cpb := httpGet(t, p.url+"/checkpoint")
	text, _, _ := itlog.SplitNote(cpb)
	cp, err := itlog.ParseCheckpoint(string(text))
	if err != nil {
		t.Fatal(err)
	}
	n := cp.N
	a := filepath.Join(dir, "a.tar")
	b := filepath.Join(dir, "b.tar")
	w := filepath.Join(dir, "w.tar")
	args := []string{"bundle", "--from", "0", "--to", strconv.FormatInt(n, 10), "--size", strconv.FormatInt(n, 10)}
	mustRun(t, p.env(), append(args, "-o", a)...)
	mustRun(t, p.env(), append(args, "-o", b)...)
	if fi, err := os.Stat(a); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the bundle file: %v %v, want mode 0600 (it holds events)", fi.Mode(), err)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ab) == 0 || !bytes.Equal(ab, bb) {
		t.Fatalf("the same request twice: %d and %d bytes, not identical", len(ab), len(bb))
	}
	mustRun(t, p.env(), "bundle", "--since", "2000-01-01T00:00:00Z", "--until", "2100-01-01T00:00:00Z", "-o", w)
	// Each fetch is recorded, after the bundle's checkpoint.
	var reads []client.Record
	for _, r := range queryJSON(t, p.env(), "--action", "indelible.read") {
		if strings.Contains(string(r.EventBytes), `"route":"/v1/bundle"`) {
			reads = append(reads, r)
		}
	}
	if len(reads) != 3 || reads[2].Index < n {
		t.Fatalf("bundle reads recorded: %d (first at %d), want 3 at or after %d", len(reads), reads[len(reads)-1].Index, n)
	}
	// A bad request is a 400 naming the problem.
	if out, errOut, code := run(t, p.env(), "bundle", "--from", "5", "--to", strconv.FormatInt(n+5, 10), "-o", filepath.Join(dir, "x.tar")); code == 0 || !strings.Contains(errOut, "beyond the checkpoint's tree size") {
		t.Fatalf("a range beyond the checkpoint: exit %d\n%s%s", code, out, errOut)
	}
	// The next period: verified against the pin the first one emitted.
	pub := filepath.Join(dir, "log.pub")
	pin := filepath.Join(dir, "pin.txt")
	out := mustRun(t, nil, "verify-bundle", a, "--key", pub, "--emit-pin", pin)
	if _, err := c.AppendNDJSON(ctx, []byte("{\"action\":\"later\"}\n{\"action\":\"later\"}\n"), true); err != nil {
		t.Fatal(err)
	}
	_, cpb2 := httpGet(t, p.url+"/checkpoint")
	text2, _, _ := itlog.SplitNote(cpb2)
	cp2, _ := itlog.ParseCheckpoint(string(text2))
	next := filepath.Join(dir, "next.tar")
	mustRun(t, p.env(), "bundle", "--from", strconv.FormatInt(n, 10), "--to", strconv.FormatInt(cp2.N, 10), "--pinned", pin, "-o", next)
	p.stop(t)

	// Offline, with the server stopped.
	want := fmt.Sprintf("%d/%d entries accounted for: %d open, 1 erased, 0 shredded; witnessed 0/0\n", n, n, n-1)
	if !strings.HasSuffix(out, want) || !strings.Contains(out, `erased: entry `+strconv.FormatInt(res[10].Index, 10)) || !strings.Contains(out, "GDPR request 42") {
		t.Fatalf("verify-bundle output:\n%s\nwant it to end with %q", out, want)
	}
	if got, _ := os.ReadFile(pin); !bytes.Equal(got, cpb) && !bytes.HasPrefix(got, text) {
		t.Fatalf("--emit-pin wrote %q", got)
	}
	out = mustRun(t, nil, "verify-bundle", next, "--key", pub, "--pinned", pin)
	if !strings.HasSuffix(out, fmt.Sprintf("; consistent with pin %d\n", n)) {
		t.Fatalf("the next period against the pin:\n%s", out)
	}
	out = mustRun(t, nil, "verify-bundle", w, "--key", pub, "--json")
	if !strings.Contains(out, `"ok": true`) || !strings.Contains(out, `"by": "received_at"`) {
		t.Fatalf("--json:\n%s", out)
	}
	// A flipped byte in the records: exit 1, naming the check.
	tampered := bytes.Clone(ab)
	k := bytes.Index(tampered, []byte(`"action":"login"`)) + 11
	tampered[k] ^= 0x01
	tf := filepath.Join(dir, "tampered.tar")
	os.WriteFile(tf, tampered, 0o644)
	if out, _, code := run(t, nil, "verify-bundle", tf, "--key", pub); code != exitFailure || !strings.Contains(out, "FAIL manifest: records.ndjson has SHA-256") {
		t.Fatalf("tampered: exit %d\n%s", code, out)
	}
	// Another key: exit 1. Garbage: exit 2.
	other := filepath.Join(dir, "other.pub")
	mustRun(t, nil, "keygen", cp.Origin, "--out", filepath.Join(dir, "other.key"), "--pub", other)
	if out, _, code := run(t, nil, "verify-bundle", a, "--key", other); code != exitFailure || !strings.Contains(out, "FAIL checkpoint:") {
		t.Fatalf("another key: exit %d\n%s", code, out)
	}
	os.WriteFile(tf, []byte("not a bundle"), 0o644)
	if _, errOut, code := run(t, nil, "verify-bundle", tf, "--key", pub); code != exitTrouble || !strings.Contains(errOut, "unusable bundle") {
		t.Fatalf("garbage: exit %d\n%s", code, errOut)
	}
}
