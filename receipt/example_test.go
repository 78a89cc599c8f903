package receipt_test

import (
	"crypto/rand"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
	"indelible.dev/receipt"
	itlog "indelible.dev/tlog"
)

// A receipt fetched from GET /v1/events/{index}/receipt is verified with the
// log's public key alone (plus witness keys and a quorum, if the log is
// witnessed). Here a one-event log is made on the spot to have a receipt.
func ExampleVerify() {
	data, logVKey := oneEventReceipt()

	policy, err := receipt.NewPolicy(logVKey, nil, 0)
	if err != nil {
		panic(err)
	}
	v, err := receipt.Verify(data, policy)
	if err != nil {
		fmt.Println("not verified:", err)
		return
	}
	fmt.Printf("event %d (%s by %s) is in %s at tree size %d\n",
		v.Index, v.Event.Action, v.Event.Actor.ID, v.Checkpoint.Origin, v.Checkpoint.N)

	// One byte changed anywhere, and nothing is returned.
	data[len(data)/2] ^= 1
	if _, err := receipt.Verify(data, policy); err != nil {
		fmt.Println("tampered receipt refused")
	}
	// Output:
	// event 0 (deploy.start by alice) is in example.com/log at tree size 1
	// tampered receipt refused
}

// oneEventReceipt returns the receipt of the only event of a new log, and
// the log's verifier key.
func oneEventReceipt() ([]byte, string) {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	signer, _ := note.NewSigner(skey)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := event.Event{Action: "deploy.start", Actor: &event.Actor{ID: "alice"}, Time: at}
	ev.Finish(at, "ci")
	b, _ := event.Canonical(ev)
	op := event.Opening{Bytes: b}
	rand.Read(op.Salt[:])
	c := op.Commitment()
	// A tree of one leaf: its root is the leaf hash, its proof empty.
	cp := itlog.Checkpoint{Origin: "example.com/log", Tree: tlog.Tree{N: 1, Hash: tlog.RecordHash(c[:])}}
	signed, _ := note.Sign(&note.Note{Text: cp.String()}, signer)
	return []byte(itlog.Receipt{Extra: op.Encode(), Index: 0, Checkpoint: signed}.String()), vkey
}
