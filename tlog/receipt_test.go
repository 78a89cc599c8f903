package tlog

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
)

// tesseraReceipt is the receipt of entry i of tessera's testdata log in the
// size-15 tree, carrying the entry itself as extra data.
func tesseraReceipt(t testing.TB, i int64) Receipt {
	t.Helper()
	r := newTileStore(t, tlogtest.TesseraTree(), 15).reader()
	p, err := ProveInclusion(i, 15, r)
	if err != nil {
		t.Fatal(err)
	}
	return Receipt{Extra: []byte(tlogtest.TesseraEntries[i]), Index: i, Proof: p, Checkpoint: tlogtest.TesseraCheckpoint(15)}
}

// verifyReceipt is what an offline verifier does with a receipt: parse it,
// open the checkpoint with the log's key, recompute the leaf from the extra
// data (the entry), and check the inclusion proof.
func verifyReceipt(data []byte, v note.Verifier) error {
	r, err := ParseReceipt(data)
	if err != nil {
		return err
	}
	c, _, err := OpenCheckpoint(r.Checkpoint, v)
	if err != nil {
		return err
	}
	return CheckInclusion(r.Proof, r.Index, c.N, tlog.RecordHash(r.Extra), c.Hash)
}

func TestReceiptRoundTrip(t *testing.T) {
	_, v := tesseraKeys(t)
	for i := int64(0); i < 15; i++ {
		r := tesseraReceipt(t, i)
		text := r.String()
		if !strings.HasPrefix(text, ReceiptHeader+"\nextra ") || !strings.HasSuffix(text, string(r.Checkpoint)) {
			t.Fatalf("receipt text:\n%s", text)
		}
		got, err := ParseReceipt([]byte(text))
		if err != nil {
			t.Fatalf("ParseReceipt(%d): %v", i, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("ParseReceipt(String()) = %+v, want %+v", got, r)
		}
		if got.String() != text {
			t.Fatal("String(ParseReceipt(text)) != text")
		}
		if err := verifyReceipt([]byte(text), v); err != nil {
			t.Fatalf("receipt %d does not verify: %v", i, err)
		}
	}
	// Without extra data, and with empty extra data.
	r := tesseraReceipt(t, 3)
	r.Extra = nil
	got, err := ParseReceipt([]byte(r.String()))
	if err != nil || got.Extra != nil || strings.Contains(r.String(), "extra") || !reflect.DeepEqual(got, r) {
		t.Errorf("receipt without extra: %+v, %v", got, err)
	}
	r.Extra = []byte{}
	got, err = ParseReceipt([]byte(r.String()))
	if err != nil || got.Extra == nil || len(got.Extra) != 0 || got.String() != r.String() {
		t.Errorf("receipt with empty extra: %+v, %v", got, err)
	}
	// A size-1 tree has an empty proof.
	one := Receipt{Index: 0, Proof: tlog.RecordProof{}, Checkpoint: tlogtest.TesseraCheckpoint(1), Extra: []byte("one")}
	if err := verifyReceipt([]byte(one.String()), v); err != nil {
		t.Errorf("size-1 receipt: %v", err)
	}
}

func TestParseReceiptRejects(t *testing.T) {
	good := tesseraReceipt(t, 7).String()
	cp := string(tlogtest.TesseraCheckpoint(15))
	h := "2Q0P5jSR+TdkwdXWyx+GbBWX0KZbNZkWzCjyTPSozsw="
	for _, bad := range []string{
		"",
		strings.Replace(good, ReceiptHeader, "c2sp.org/tlog-proof@v2", 1),
		strings.Replace(good, ReceiptHeader+"\n", ReceiptHeader+" \n", 1),
		strings.Replace(good, ReceiptHeader+"\n", ReceiptHeader+"\r\n", 1),
		strings.Replace(good, "extra ZWl0\n", "extra ZWl0=\n", 1),
		strings.Replace(good, "extra ZWl0\n", "extra ZWl1\n", 1), // canonical: parses, but must not verify (below)
		ReceiptHeader + "\nextra ZWl=\nindex 7\n\n" + cp,
		ReceiptHeader + "\nextra !!!!\nindex 7\n\n" + cp,
		ReceiptHeader + "\nindex 07\n\n" + cp,
		ReceiptHeader + "\nindex -7\n\n" + cp,
		ReceiptHeader + "\nindex \n\n" + cp,
		ReceiptHeader + "\nindex 7 \n\n" + cp,
		ReceiptHeader + "\nIndex 7\n\n" + cp,
		ReceiptHeader + "\nindex 7\n" + h + "\n" + cp,
		ReceiptHeader + "\nindex 7\n" + h[:43] + "\n\n" + cp,
		ReceiptHeader + "\nindex 7\n" + h + " \n\n" + cp,
		ReceiptHeader + "\nindex 7\n" + strings.Repeat(h+"\n", MaxProofHashes+1) + "\n" + cp,
		ReceiptHeader + "\nindex 7\n\n",
		ReceiptHeader + "\nindex 7\n\n" + strings.TrimSuffix(cp, "\n"),
		ReceiptHeader + "\nindex 7\n\nexample.com/log/testdata\n15\n",
		ReceiptHeader + "\nindex 7",
		ReceiptHeader + "\nextra ZWl0\n",
		ReceiptHeader + "\nextra ZWl0\nextra ZWl0\nindex 7\n\n" + cp,
	} {
		if strings.Contains(bad, "extra ZWl1\n") {
			if err := verifyReceipt([]byte(bad), mustVerifier(t)); err == nil {
				t.Errorf("receipt with other extra data verified")
			}
			continue
		}
		if r, err := ParseReceipt([]byte(bad)); err == nil {
			t.Errorf("ParseReceipt(%q) = %+v, want an error", bad, r)
		} else if !errors.Is(err, ErrMalformedReceipt) {
			t.Errorf("ParseReceipt(%q) error %v does not wrap ErrMalformedReceipt", bad, err)
		}
	}
	if _, err := ParseReceipt(append([]byte(good), make([]byte, MaxCheckpointSize+4*MaxReceiptExtra/3+4096)...)); err == nil {
		t.Error("ParseReceipt accepted an oversized receipt")
	}
}

func mustVerifier(t testing.TB) note.Verifier {
	_, v := tesseraKeys(t)
	return v
}

// TestReceiptMutations flips every bit and byte of receipts, truncates them
// at every length and deletes every byte: an offline verifier (parse, open
// the checkpoint, recompute the leaf from the extra data, check the proof)
// rejects every result.
func TestReceiptMutations(t *testing.T) {
	v := mustVerifier(t)
	for _, i := range []int64{0, 7, 14} {
		orig := []byte(tesseraReceipt(t, i).String())
		if err := verifyReceipt(orig, v); err != nil {
			t.Fatal(err)
		}
		reject := func(what string, m []byte) {
			t.Helper()
			if verifyReceipt(m, v) == nil {
				t.Errorf("receipt %d with %s verified:\n%s", i, what, m)
			}
		}
		for k := range orig {
			for _, f := range flips {
				m := bytes.Clone(orig)
				m[k] ^= f
				reject(fmt.Sprintf("byte %d ^ %#x", k, f), m)
			}
			reject(fmt.Sprintf("truncation to %d", k), orig[:k])
			reject(fmt.Sprintf("byte %d deleted", k), append(bytes.Clone(orig[:k]), orig[k+1:]...))
		}
	}
}
