package receipt

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
	itlog "indelible.dev/tlog"
)

// testReceipt returns a valid receipt of the only event of a new log, the
// log's policy and the opening.
func testReceipt(t testing.TB) ([]byte, Policy, event.Opening) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "example.com/receipt-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := event.Event{Action: "deploy.start", Actor: &event.Actor{ID: "alice"}, Time: at}
	ev.Finish(at, "ci")
	b, err := event.Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	op := event.Opening{Bytes: b}
	rand.Read(op.Salt[:])
	c := op.Commitment()
	cp := itlog.Checkpoint{Origin: "example.com/receipt-test", Tree: tlog.Tree{N: 1, Hash: tlog.RecordHash(c[:])}}
	signed, err := note.Sign(&note.Note{Text: cp.String()}, signer)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(vkey, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(itlog.Receipt{Extra: op.Encode(), Index: 0, Checkpoint: signed}.String()), p, op
}

// TestVerify: a valid receipt verifies and returns the event decoded from
// the committed bytes; each broken step fails naming it, wrapping
// ErrInvalid; so does every flipped byte.
func TestVerify(t *testing.T) {
	data, p, op := testReceipt(t)
	v, err := Verify(data, p)
	if err != nil {
		t.Fatal(err)
	}
	if v.Index != 0 || v.Event.Action != "deploy.start" || !bytes.Equal(v.EventBytes, op.Bytes) || v.Salt != op.Salt ||
		v.Commitment != op.Commitment() || v.Checkpoint.N != 1 || len(v.Cosigners) != 0 {
		t.Fatalf("Verified %+v", v)
	}
	_, other, _ := testReceipt(t)
	noExtra := strings.Replace(string(data), "extra "+strings.SplitN(strings.SplitN(string(data), "extra ", 2)[1], "\n", 2)[0]+"\n", "", 1)
	for _, tc := range []struct {
		name string
		data []byte
		p    Policy
		step string
	}{
		{"garbage", []byte("not a receipt"), p, "parsing the receipt"},
		{"another log's key", data, other, "checking the checkpoint's signatures"},
		{"no extra", []byte(noExtra), p, "opening the commitment"},
	} {
		_, err := Verify(tc.data, tc.p)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.step) {
			t.Errorf("%s: %v, want ErrInvalid at %q", tc.name, err, tc.step)
		}
	}
	for i := range data {
		m := bytes.Clone(data)
		m[i] ^= 0x01
		if v, err := Verify(m, p); err == nil && !bytes.Equal(v.EventBytes, op.Bytes) {
			t.Fatalf("byte %d flipped: verified other event bytes %q", i, v.EventBytes)
		} else if err == nil && m[i] != '\n' {
			// Only changes the formats tolerate may verify; none should.
			t.Errorf("byte %d flipped (%q): still verifies", i, data[i])
		}
	}
}

// FuzzVerify: Verify never panics, and what it verifies is what it returns:
// the returned event bytes and salt recompute the commitment.
func FuzzVerify(f *testing.F) {
	data, p, _ := testReceipt(f)
	f.Add(data)
	f.Add([]byte("not a receipt"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Verify(b, p)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if event.Commitment(v.Salt, v.EventBytes) != v.Commitment {
			t.Fatal("verified a commitment the returned bytes do not make")
		}
	})
}
