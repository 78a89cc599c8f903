package main

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"indelible.dev/audit/audittest"
	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// TestAuditMaxAge: --max-age fails (exit 1, naming the age) when the newest
// witness cosignature is older than the limit, passes when it is fresh, and
// is a usage error without --witness (a checkpoint carries no time).
func TestAuditMaxAge(t *testing.T) {
	l := audittest.NewLog(t, "example.com/stale", 0)
	l.Grow(t, 5)
	proxy := audittest.NewProxy(t, l.Serve(t))
	_, priv, _ := ed25519.GenerateKey(nil)
	cosignedAt := func(at time.Time) (*itlog.Cosigner, []byte) {
		c, err := itlog.NewCosigner("clock.example", priv, func() time.Time { return at })
		if err != nil {
			t.Fatal(err)
		}
		return c, tlogtest.SignCheckpoint(l.Origin, 5, l.Root(t, 5), l.Signer, c)
	}
	c, old := cosignedAt(time.Now().Add(-2 * time.Hour))
	proxy.Set(audittest.Replace("checkpoint", old))
	args := []string{"--url", proxy.URL, "--key", l.VKey, "--witness", c.VKey(), "--no-progress"}
	if out, errOut, code := runAuditCmd(t, append(args, "--max-age", "1h")...); code != exitFailure || !strings.Contains(errOut, "older than --max-age 1h") {
		t.Fatalf("stale cosignature: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := runAuditCmd(t, append(args, "--max-age", "3h")...); code != exitVerified {
		t.Fatalf("cosignature within --max-age: exit %d\n%s\n%s", code, out, errOut)
	}
	_, fresh := cosignedAt(time.Now())
	proxy.Set(audittest.Replace("checkpoint", fresh))
	if out, errOut, code := runAuditCmd(t, append(args, "--max-age", "1h")...); code != exitVerified {
		t.Fatalf("fresh cosignature: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := runAuditCmd(t, "--url", proxy.URL, "--key", l.VKey, "--max-age", "1h"); code != exitTrouble || !strings.Contains(errOut, "needs --witness") {
		t.Fatalf("--max-age without --witness: exit %d %s", code, errOut)
	}
}
