package tlog

import (
	"bytes"
	"reflect"
	"strconv"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
)

// The fuzz targets below check a round-trip property of each parser of
// untrusted input: whatever a parser accepts re-encodes to exactly the bytes
// it was given (so there is one encoding per value), and parsing the
// re-encoding gives the same value. `go test` runs their seed corpus;
// `go test -fuzz FuzzX ./tlog` explores.

func FuzzParseCheckpoint(f *testing.F) {
	for n := range tlogtest.TesseraCheckpoints {
		f.Add(tlogtest.TesseraOrigin + "\n" + strconv.Itoa(n) + "\n" + tlogtest.TesseraCheckpoints[n].Root + "\n")
	}
	f.Add("example.com/log\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\next one\next two\n")
	f.Add("example.com/log\n015\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\n")
	f.Add("example.com/log\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cd=\n")
	f.Add("example.com/log\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\n\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			return
		}
		if c.String() != text {
			t.Fatalf("ParseCheckpoint(%q).String() = %q", text, c.String())
		}
		c2, err := ParseCheckpoint(c.String())
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-parse of %q: %+v, %v", text, c2, err)
		}
		if !ValidOrigin(c.Origin) || c.N < 0 {
			t.Fatalf("accepted %+v", c)
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	for n := range tlogtest.TesseraCheckpoints {
		f.Add(tlogtest.TesseraCheckpoint(n))
	}
	f.Add([]byte("example.com/log/testdata\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\next line one\n\n— example.com/log/testdata M9e0loVMPXaMf6ZlulpW5/VUG39P4B7o68qaw+BK0sjrvuW55y1FyNUwSv4t6cIUpCmMcxrLPW+aBe2R/eQIsmUSEgY=\n"))
	s, v := tesseraKeys(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, n, err := OpenCheckpoint(msg, v)
		if err != nil {
			return
		}
		if n.Text != c.String() {
			t.Fatalf("opened text %q, re-encoded %q", n.Text, c.String())
		}
		// Ed25519 is deterministic: the log's signature over the
		// re-encoding is the signature line the note carried.
		signed, err := SignCheckpoint(c, s)
		if err != nil {
			t.Fatal(err)
		}
		_, sigs, _ := SplitNote(signed)
		if !bytes.Contains(msg, sigs) {
			t.Fatalf("accepted note lacks the log's canonical signature line %q", sigs)
		}
	})
}

func FuzzParseTilePath(f *testing.F) {
	for _, v := range tilePathVectors {
		f.Add(v.path)
	}
	f.Add("tile/0/x000/001")
	f.Add("tile/0/000.p/256")
	f.Add("tile/entries/x001/x234/067.p/0")
	f.Fuzz(func(t *testing.T, path string) {
		tile, err := ParseTilePath(path)
		if err != nil {
			return
		}
		if p := TilePath(tile); p != path {
			t.Fatalf("ParseTilePath(%q) = %+v, whose path is %q", path, tile, p)
		}
		if x := xmodPath(tile); x != path {
			t.Fatalf("path %q differs from x/mod's %q", path, x)
		}
	})
}

func FuzzParseBundle(f *testing.F) {
	var b []byte
	for _, e := range tlogtest.TesseraEntries {
		b = AppendBundleEntry(b, []byte(e))
	}
	f.Add(b, 15)
	f.Add(b, 3)
	f.Add(b[:len(b)-1], 15)
	f.Add([]byte{0, 0, 0, 0}, 2)
	f.Add([]byte{0xff, 0xff}, 1)
	f.Fuzz(func(t *testing.T, b []byte, want int) {
		if want < 1 || want > TileWidth {
			return
		}
		entries, err := ParseBundle(b, want)
		if err != nil {
			return
		}
		var re []byte
		for _, e := range entries {
			re = AppendBundleEntry(re, e)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("ParseBundle(%x, %d) re-encodes to %x", b, want, re)
		}
		for w := 1; w <= want; w++ {
			p, err := BundlePrefix(b, w)
			if err != nil {
				t.Fatal(err)
			}
			pe, err := ParseBundle(p, w)
			if err != nil || !reflect.DeepEqual(pe, entries[:w]) {
				t.Fatalf("prefix %d: %v", w, err)
			}
		}
	})
}

func FuzzParseReceipt(f *testing.F) {
	for _, i := range []int64{0, 7, 14} {
		f.Add([]byte(tesseraReceipt(f, i).String()))
	}
	r := tesseraReceipt(f, 3)
	r.Extra = nil
	f.Add([]byte(r.String()))
	r.Extra = []byte{}
	f.Add([]byte(r.String()))
	f.Add([]byte(ReceiptHeader + "\nindex 0\n\nx\n\ny\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReceipt(data)
		if err != nil {
			return
		}
		if r.String() != string(data) {
			t.Fatalf("ParseReceipt(%q).String() = %q", data, r.String())
		}
		r2, err := ParseReceipt([]byte(r.String()))
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-parse: %+v, %v", r2, err)
		}
		if r.Index < 0 || len(r.Proof) > MaxProofHashes {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1", "15", "00", "-1", "+1", "9223372036854775807", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 || strconv.FormatInt(n, 10) != s {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}

func FuzzParseHash(f *testing.F) {
	for _, c := range tlogtest.TesseraCheckpoints {
		f.Add(c.Root)
	}
	f.Add("rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cd=")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			return
		}
		if got := (Checkpoint{Origin: "o", Tree: tlog.Tree{Hash: h}}).String(); got != "o\n0\n"+s+"\n" {
			t.Fatalf("ParseHash(%q) re-encodes as %q", s, got)
		}
	})
}
