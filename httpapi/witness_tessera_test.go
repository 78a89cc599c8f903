package httpapi

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// TestTesseraLogWitnessedByIndelible has a tessera v1.0.4 log (POSIX
// storage) use an Indelible witness through tessera's own witness client:
// tessera sends its checkpoints with consistency proofs built from its
// tiles, and publishes them only once our cosignature verifies.
func TestTesseraLogWitnessedByIndelible(t *testing.T) {
	const origin = "example.com/tessera-log"
	key := tlogtest.NewKey(t, origin)
	signer, verifier := key.Signer, key.Verifier
	tw := newTestWitness(t, "witness.example/indelible", []witness.Log{{Origin: origin, Verifiers: []note.Verifier{verifier}}}, nil, -1)

	u, _ := url.Parse(tw.ts.URL)
	tessW, err := tessera.NewWitness(tw.vkey, u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	driver, err := posix.New(ctx, posix.Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(16, 10*time.Millisecond).
		WithCheckpointInterval(100*time.Millisecond).
		WithWitnesses(tessera.NewWitnessGroup(1, tessW), &tessera.WitnessOptions{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	await := tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 20*time.Millisecond)
	fv, _ := fnote.NewVerifierForCosignatureV1(tw.vkey)
	for round := 0; round < 3; round++ {
		var last []byte
		for i := 0; i < 10; i++ {
			_, cp, err := await.Await(ctx, appender.Add(ctx, tessera.NewEntry([]byte(fmt.Sprintf("round %d entry %d", round, i)))))
			if err != nil {
				t.Fatalf("tessera append: %v", err)
			}
			last = cp
		}
		cp, _, err := itlog.OpenCheckpoint(last, verifier)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := note.Open(last, note.VerifierList(fv)); err != nil || len(n.Sigs) != 1 {
			t.Fatalf("tessera's checkpoint of size %d lacks our verified cosignature: %v\n%s", cp.N, err, last)
		}
		stored, err := tw.w.Checkpoint(origin)
		if err != nil {
			t.Fatal(err)
		}
		sc, _ := itlog.ParseCheckpoint(string(stored[:len(cp.String())]))
		if sc.N < cp.N {
			t.Fatalf("witness at size %d, tessera published %d", sc.N, cp.N)
		}
	}
	if st := tw.w.Stats(); st.Cosigned < 3 {
		t.Fatalf("witness stats %+v", st)
	}
}
