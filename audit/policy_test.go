package audit_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	"indelible.dev/audit"
	"indelible.dev/audit/audittest"
	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// TestWitnessCannotStandInForLog: a witness key named like the log's origin
// is refused, so a checkpoint that only such a "witness" signed (the log
// never did) is never verified, even when its root matches the tiles.
func TestWitnessCannotStandInForLog(t *testing.T) {
	l := audittest.NewLog(t, "example.com/impostor", 0)
	l.Grow(t, 10)
	proxy := audittest.NewProxy(t, l.Serve(t))
	_, priv, _ := ed25519.GenerateKey(nil)
	impostor, err := itlog.NewCosigner(l.Origin, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := tlogtest.SignCheckpoint(l.Origin, 10, l.Root(t, 10), impostor)
	proxy.Set(audittest.Replace("checkpoint", forged))

	opts := options(t, l, proxy.URL)
	opts.Witnesses = append(opts.Witnesses, impostor.Verifier())
	opts.Quorum = 1
	res, err := audit.Audit(context.Background(), opts, nil)
	if err == nil {
		t.Fatalf("a checkpoint signed only by a witness named like the origin verified: %+v", res)
	}
	// With the log's key alone the forged checkpoint is a failure of the
	// checkpoint, not a pass.
	opts = options(t, l, proxy.URL)
	_, err = audit.Audit(context.Background(), opts, nil)
	var f *audit.Failure
	if !errors.As(err, &f) || f.Kind != audit.KindCheckpoint {
		t.Fatalf("forged checkpoint without witnesses: %v", err)
	}
}
