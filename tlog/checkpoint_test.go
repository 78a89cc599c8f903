package tlog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
)

func tesseraKeys(t testing.TB) (note.Signer, note.Verifier) {
	k := tlogtest.TesseraKey(t)
	return k.Signer, k.Verifier
}

// TestCheckpointVectors checks every checkpoint of tessera's testdata log:
// its root recomputes from the entries, signing our Checkpoint with the
// published key reproduces the note byte for byte, and OpenCheckpoint and
// ParseCheckpoint return it; String re-encodes the text exactly.
func TestCheckpointVectors(t *testing.T) {
	s, v := tesseraKeys(t)
	hashes := tlogtest.TesseraTree()
	for n := range tlogtest.TesseraCheckpoints {
		root := hashes.Root(int64(n))
		want := Checkpoint{Origin: tlogtest.TesseraOrigin, Tree: tlog.Tree{N: int64(n), Hash: root}}
		signed, err := SignCheckpoint(want, s)
		if err != nil {
			t.Fatal(err)
		}
		if vec := tlogtest.TesseraCheckpoint(n); !bytes.Equal(signed, vec) {
			t.Errorf("checkpoint %d:\n%s\nwant tessera's\n%s", n, signed, vec)
		}
		got, nt, err := OpenCheckpoint(tlogtest.TesseraCheckpoint(n), v)
		if err != nil {
			t.Fatalf("OpenCheckpoint(checkpoint.%d): %v", n, err)
		}
		if !reflect.DeepEqual(got, want) || len(nt.Sigs) != 1 {
			t.Errorf("OpenCheckpoint(checkpoint.%d) = %+v, want %+v", n, got, want)
		}
		text, _, ok := SplitNote(signed)
		if !ok || string(text) != want.String() {
			t.Errorf("SplitNote(checkpoint.%d) text %q, want %q", n, text, want.String())
		}
		if c, err := ParseCheckpoint(want.String()); err != nil || !reflect.DeepEqual(c, want) {
			t.Errorf("ParseCheckpoint(String()) = %+v, %v", c, err)
		}
	}
	// The wrong origin, no known key, and a key of another name.
	_, other, err := note.GenerateKey(nil, "example.com/other")
	if err != nil {
		t.Fatal(err)
	}
	ov, _ := note.NewVerifier(other)
	if _, _, err := OpenCheckpoint(tlogtest.TesseraCheckpoint(3), ov); err == nil {
		t.Error("OpenCheckpoint accepted a checkpoint for another origin")
	}
	if _, _, err := OpenCheckpoint(tlogtest.TesseraCheckpoint(3), v, ov); err == nil {
		t.Error("OpenCheckpoint accepted log keys of two names")
	}
	if _, _, err := OpenCheckpoint(tlogtest.TesseraCheckpoint(3)); err == nil {
		t.Error("OpenCheckpoint accepted a checkpoint with no known key")
	}
}

// TestCheckpointExtensionVector checks a cross-checked vector: the log-signed
// size-15 checkpoint with one extension line.
func TestCheckpointExtensionVector(t *testing.T) {
	s, v := tesseraKeys(t)
	const vec = "example.com/log/testdata\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\next line one\n\n— example.com/log/testdata M9e0loVMPXaMf6ZlulpW5/VUG39P4B7o68qaw+BK0sjrvuW55y1FyNUwSv4t6cIUpCmMcxrLPW+aBe2R/eQIsmUSEgY=\n"
	c, _, err := OpenCheckpoint([]byte(vec), v)
	if err != nil {
		t.Fatal(err)
	}
	if c.N != 15 || len(c.Extension) != 1 || c.Extension[0] != "ext line one" || c.Hash != tlogtest.TesseraTree().Root(15) {
		t.Fatalf("parsed %+v", c)
	}
	signed, err := SignCheckpoint(c, s)
	if err != nil || string(signed) != vec {
		t.Fatalf("re-signed:\n%s, %v", signed, err)
	}
}

// TestParseCheckpointStrict lists texts that c2sp.org/tlog-checkpoint (or our
// limits) forbid, each next to the valid text it was made from.
func TestParseCheckpointStrict(t *testing.T) {
	const root = "rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs="
	valid := []string{
		"o\n0\n" + root + "\n",
		"example.com/log\n15\n" + root + "\n",
		"example.com/log\n9223372036854775807\n" + root + "\n",
		"example.com/log\n15\n" + root + "\next one\next two\n",
		"ex\u00e9mple.com/log\n15\n" + root + "\n",
		"example.com/log\n15\n" + root + strings.Repeat("\nx", MaxExtensionLines) + "\n",
	}
	for _, text := range valid {
		c, err := ParseCheckpoint(text)
		if err != nil {
			t.Errorf("ParseCheckpoint(%q): %v", text, err)
			continue
		}
		if c.String() != text {
			t.Errorf("round trip of %q gave %q", text, c.String())
		}
	}
	invalid := []string{
		"",
		"\n",
		"example.com/log\n15\n" + root,                                      // no final newline
		"example.com/log\n15\n",                                             // no hash
		"example.com/log\n" + root + "\n",                                   // no size
		"\n15\n" + root + "\n",                                              // empty origin
		"example.com/log \n15\n" + root + "\n",                              // space in origin
		"example.com+log\n15\n" + root + "\n",                               // '+' in origin
		"example.com/log\r\n15\n" + root + "\n",                             // CR
		"example.com/log\n015\n" + root + "\n",                              // leading zero
		"example.com/log\n00\n" + root + "\n",                               // leading zero
		"example.com/log\n+15\n" + root + "\n",                              // sign
		"example.com/log\n-1\n" + root + "\n",                               // negative
		"example.com/log\n1 5\n" + root + "\n",                              // space
		"example.com/log\n0x10\n" + root + "\n",                             // hex
		"example.com/log\n9223372036854775808\n" + root + "\n",              // beyond int64
		"example.com/log\n15\n" + root[:43] + "\n",                          // short hash
		"example.com/log\n15\n" + root[:43] + "\n\n",                        // padding missing
		"example.com/log\n15\n" + root[:42] + "d=\n",                        // non-canonical trailing bits
		"example.com/log\n15\n" + root + "=\n",                              // extra padding
		"example.com/log\n15\n" + strings.Replace(root, "/", "_", 1) + "\n", // URL alphabet
		"example.com/log\n15\n" + root + "\n\n",                             // empty extension line
		"example.com/log\n15\n" + root + "\next\n\n",                        // empty extension line
		"example.com/log\n15\n" + root + "\next\x01\n",                      // control character
		"example.com/log\n15\n" + root + "\n\xff\n",                         // invalid UTF-8
		"example.com/log\n15\n" + root + strings.Repeat("\nx", MaxExtensionLines+1) + "\n",
		"example.com/log\n15\n" + root + "\n" + strings.Repeat("x", MaxCheckpointSize) + "\n",
	}
	for _, text := range invalid {
		if c, err := ParseCheckpoint(text); err == nil {
			t.Errorf("ParseCheckpoint(%q) = %+v, want an error", text, c)
		} else if !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("ParseCheckpoint(%q) error %v does not wrap ErrMalformedCheckpoint", text, err)
		}
	}
}

// flips are the byte changes the mutation tests apply at every position.
var flips = []byte{0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff}

// TestCheckpointMutations flips every bit (and every whole byte) of signed
// checkpoints, truncates them at every length and deletes every byte: each
// result must be rejected by OpenCheckpoint. The unsigned text, mutated the
// same way, must fail to parse or parse to a different checkpoint.
func TestCheckpointMutations(t *testing.T) {
	_, v := tesseraKeys(t)
	for _, n := range []int{0, 1, 15} {
		orig := tlogtest.TesseraCheckpoint(n)
		want, _, err := OpenCheckpoint(orig, v)
		if err != nil {
			t.Fatal(err)
		}
		reject := func(what string, msg []byte) {
			t.Helper()
			if c, _, err := OpenCheckpoint(msg, v); err == nil {
				t.Errorf("checkpoint.%d with %s accepted as %+v:\n%s", n, what, c, msg)
			}
		}
		for i := range orig {
			for _, f := range flips {
				m := bytes.Clone(orig)
				m[i] ^= f
				reject(fmt.Sprintf("byte %d ^ %#x", i, f), m)
			}
			reject(fmt.Sprintf("truncation to %d bytes", i), orig[:i])
			reject(fmt.Sprintf("byte %d deleted", i), append(bytes.Clone(orig[:i]), orig[i+1:]...))
		}
		text := want.String()
		for i := range text {
			for _, f := range flips {
				m := []byte(text)
				m[i] ^= f
				if c, err := ParseCheckpoint(string(m)); err == nil && reflect.DeepEqual(c, want) {
					t.Errorf("text of checkpoint.%d with byte %d ^ %#x parses to the same checkpoint", n, i, f)
				}
			}
			if c, err := ParseCheckpoint(text[:i]); err == nil && reflect.DeepEqual(c, want) {
				t.Errorf("text of checkpoint.%d truncated to %d parses to the same checkpoint", n, i)
			}
		}
	}
}

// TestSplitNote checks the split at the last blank line (a note text may hold
// blank lines of its own).
func TestSplitNote(t *testing.T) {
	text, sigs, ok := SplitNote([]byte("a\n\nb\n\n— k sig\n"))
	if !ok || string(text) != "a\n\nb\n" || string(sigs) != "— k sig\n" {
		t.Errorf("SplitNote = %q %q %v", text, sigs, ok)
	}
	if _, _, ok := SplitNote([]byte("a\nb\n")); ok {
		t.Error("SplitNote of a note with no blank line succeeded")
	}
}

// TestParseSizeAndHash checks the number and hash parsers on their own.
func TestParseSizeAndHash(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "1": 1, "10": 10, "9223372036854775807": 1<<63 - 1} {
		if n, err := ParseSize(s); err != nil || n != want {
			t.Errorf("ParseSize(%q) = %d, %v", s, n, err)
		}
	}
	for _, s := range []string{"", "00", "01", "-0", "+1", " 1", "1 ", "1e3", "9223372036854775808", "１"} {
		if n, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", s, n)
		}
	}
	h, err := ParseHash("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
	if err != nil || h != EmptyRoot {
		t.Errorf("ParseHash(empty root) = %v, %v", h, err)
	}
	if EmptyRoot != tlog.Hash(sha256.Sum256(nil)) {
		t.Error("EmptyRoot is not SHA-256 of the empty string")
	}
}
