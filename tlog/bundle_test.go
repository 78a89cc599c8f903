package tlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
)

// encodeBundle is an independent encoder: each entry as a big-endian uint16
// length and its bytes.
func encodeBundle(entries [][]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

func tesseraEntryBytes() [][]byte {
	var out [][]byte
	for _, e := range tlogtest.TesseraEntries {
		out = append(out, []byte(e))
	}
	return out
}

// TestBundleVectors checks tessera's testdata bundle and level-0 tile
// (a cross-checked test vector).
func TestBundleVectors(t *testing.T) {
	var b []byte
	for _, e := range tesseraEntryBytes() {
		b = AppendBundleEntry(b, e)
	}
	const want = "00036f6e65000374776f000574687265650004666f757200046669766500037369780005736576656e000365697400046e61696e000374656e0006696c6576656e00057477656c660008746872656574656e0007666f757274656e000666697674656e"
	if hex.EncodeToString(b) != want {
		t.Fatalf("bundle = %x, want tessera's %s", b, want)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != "9ac6a9fc9012f2b4d67ac26041933c119e1505defc5c808ed614c5778c9f1716" {
		t.Errorf("bundle sha256 %x", sum)
	}
	tile, err := tlog.ReadTileData(tlog.Tile{H: 8, L: 0, N: 0, W: 15}, tlogtest.TesseraTree())
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(tile); hex.EncodeToString(sum[:]) != "93593af14d2cce39867d2e73fe4ca400a38581605c5c4501a03e752d9b51a130" {
		t.Errorf("tile/0/000.p/15 sha256 %x", sum)
	}
	if hex.EncodeToString(tile[:64]) != "d0d7360ab79f58ab1e1e3fe64ad77e2ea0bc07e36b5f46ed2223edd9298df9e9ab1ab7f07c7c8fe0eff4ba6faa53c7e4412e91a599153e8aa4e01beece5b7825" {
		t.Errorf("tile/0/000.p/2 = %x", tile[:64])
	}
	if err := checkBundle(b, tile, 15); err != nil {
		t.Fatal(err)
	}
}

// TestBundleRoundTrip encodes random bundles (including empty and
// maximum-size entries), parses them back, and takes every prefix.
func TestBundleRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 50; iter++ {
		n := 1 + rng.IntN(256)
		entries := make([][]byte, n)
		for i := range entries {
			switch rng.IntN(10) {
			case 0:
				entries[i] = []byte{}
			case 1:
				if iter%10 == 0 {
					entries[i] = bytes.Repeat([]byte{byte(i)}, MaxEntrySize)
					break
				}
				fallthrough
			default:
				entries[i] = make([]byte, rng.IntN(300))
				for j := range entries[i] {
					entries[i][j] = byte(rng.Uint32())
				}
			}
		}
		var b []byte
		for _, e := range entries {
			b = AppendBundleEntry(b, e)
		}
		if !bytes.Equal(b, encodeBundle(entries)) {
			t.Fatal("AppendBundleEntry differs from the uint16-prefixed encoding")
		}
		got, err := ParseBundle(b, n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if !bytes.Equal(got[i], entries[i]) {
				t.Fatalf("entry %d differs", i)
			}
		}
		for w := 1; w <= n; w++ {
			p, err := BundlePrefix(b, w)
			if err != nil || !bytes.Equal(p, encodeBundle(entries[:w])) {
				t.Fatalf("BundlePrefix(%d of %d) = %v", w, n, err)
			}
		}
		if _, err := BundlePrefix(b, n+1); !errors.Is(err, ErrMalformedBundle) {
			t.Errorf("BundlePrefix beyond the bundle: %v", err)
		}
		for _, want := range []int{n - 1, n + 1} {
			if want < 1 {
				continue
			}
			if _, err := ParseBundle(b, want); !errors.Is(err, ErrMalformedBundle) {
				t.Errorf("ParseBundle(%d entries, want %d) = %v", n, want, err)
			}
		}
		if _, err := ParseBundle(append(bytes.Clone(b), 0), n); !errors.Is(err, ErrMalformedBundle) {
			t.Errorf("ParseBundle with a trailing byte: %v", err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("AppendBundleEntry of a 65536-byte entry did not panic")
		}
	}()
	AppendBundleEntry(nil, make([]byte, MaxEntrySize+1))
}

// checkBundle is how a client verifies a bundle: it must parse to exactly w
// entries whose leaf hashes are the first w hashes of the level-0 tile.
func checkBundle(b, tile []byte, w int) error {
	entries, err := ParseBundle(b, w)
	if err != nil {
		return err
	}
	for i, e := range entries {
		h := tlog.RecordHash(e)
		if !bytes.Equal(h[:], tile[i*32:(i+1)*32]) {
			return fmt.Errorf("entry %d does not hash to its leaf", i)
		}
	}
	return nil
}

// TestBundleMutations flips every bit and byte of a bundle, truncates it at
// every length and deletes every byte: checkBundle rejects every result,
// through the parser (lengths) or the leaf hashes (contents).
func TestBundleMutations(t *testing.T) {
	entries := tesseraEntryBytes()
	entries = append(entries, []byte{}, bytes.Repeat([]byte{0}, 300))
	hashes := tlogtest.NewTree(entries...)
	w := len(entries)
	tile, err := tlog.ReadTileData(tlog.Tile{H: 8, L: 0, N: 0, W: w}, hashes)
	if err != nil {
		t.Fatal(err)
	}
	b := encodeBundle(entries)
	if err := checkBundle(b, tile, w); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		for _, f := range flips {
			m := bytes.Clone(b)
			m[i] ^= f
			if checkBundle(m, tile, w) == nil {
				t.Errorf("bundle with byte %d ^ %#x accepted", i, f)
			}
		}
		if checkBundle(b[:i], tile, w) == nil {
			t.Errorf("bundle truncated to %d bytes accepted", i)
		}
		if checkBundle(append(bytes.Clone(b[:i]), b[i+1:]...), tile, w) == nil {
			t.Errorf("bundle with byte %d deleted accepted", i)
		}
	}
}
