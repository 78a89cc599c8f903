package tlog

import (
	"errors"
	"fmt"
)

// MaxEntrySize is the largest entry an entry bundle can hold: its length is a
// big-endian uint16.
const MaxEntrySize = 1<<16 - 1

// ErrMalformedBundle is returned, possibly wrapped, for bytes that are not a
// valid entry bundle of the expected width.
var ErrMalformedBundle = errors.New("malformed entry bundle")

// AppendBundleEntry appends entry to the bundle b in the c2sp.org/tlog-tiles
// encoding (a big-endian uint16 length, then the bytes) and returns the
// extended slice. It panics if entry is larger than MaxEntrySize: callers
// check sizes where the entry comes in.
func AppendBundleEntry(b, entry []byte) []byte {
	if len(entry) > MaxEntrySize {
		panic(fmt.Sprintf("tlog: bundle entry of %d bytes exceeds %d", len(entry), MaxEntrySize))
	}
	b = append(b, byte(len(entry)>>8), byte(len(entry)))
	return append(b, entry...)
}

// ParseBundle splits an entry bundle into its entries, which alias b. It
// requires exactly want entries (want > 0) with no trailing bytes.
func ParseBundle(b []byte, want int) ([][]byte, error) {
	entries := make([][]byte, 0, want)
	err := WalkBundle(b, func(e []byte) bool {
		entries = append(entries, e)
		return len(entries) <= want
	})
	if err != nil {
		return nil, err
	}
	if len(entries) != want {
		return nil, fmt.Errorf("%w: %d entries, want %d", ErrMalformedBundle, len(entries), want)
	}
	return entries, nil
}

// WalkBundle calls f with each entry of bundle b in order (aliasing b) until f
// returns false. It returns an error if the bundle is truncated.
func WalkBundle(b []byte, f func(entry []byte) bool) error {
	for len(b) > 0 {
		if len(b) < 2 {
			return fmt.Errorf("%w: truncated length prefix", ErrMalformedBundle)
		}
		n := int(b[0])<<8 | int(b[1])
		if len(b)-2 < n {
			return fmt.Errorf("%w: entry of %d bytes truncated to %d", ErrMalformedBundle, n, len(b)-2)
		}
		if !f(b[2 : 2+n]) {
			return nil
		}
		b = b[2+n:]
	}
	return nil
}

// BundlePrefix returns the first w entries of bundle b, as the bytes of the
// partial bundle of width w (partial bundles are prefixes of later ones). It
// fails if b holds fewer than w entries.
func BundlePrefix(b []byte, w int) ([]byte, error) {
	off, k := 0, 0
	for k < w {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("%w: %d entries, want at least %d", ErrMalformedBundle, k, w)
		}
		n := int(b[off])<<8 | int(b[off+1])
		if len(b)-off-2 < n {
			return nil, fmt.Errorf("%w: entry %d truncated", ErrMalformedBundle, k)
		}
		off += 2 + n
		k++
	}
	return b[:off], nil
}
