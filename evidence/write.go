package evidence

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"
)

// ErrChanged means the records written differ from those digested before
// (the store changed between the two passes of a build): the bundle written
// so far is unusable and must be discarded.
var ErrChanged = errors.New("evidence: records changed while the bundle was written")

// Digest counts and hashes the bytes written to it: the first pass over a
// bundle's records, whose size and SHA-256 go into the tar header and the
// manifest before the records themselves are written. It also keeps their
// CRC-32C, against which Write checks the second pass at a fraction of the
// cost of hashing it again.
type Digest struct {
	h   hash.Hash
	crc uint32
	n   int64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewDigest returns an empty Digest.
func NewDigest() *Digest { return &Digest{h: sha256.New()} }

func (d *Digest) Write(p []byte) (int, error) {
	if d.h != nil {
		d.h.Write(p)
	}
	d.crc = crc32.Update(d.crc, castagnoli, p)
	d.n += int64(len(p))
	return len(p), nil
}

// Size returns the number of bytes written.
func (d *Digest) Size() int64 { return d.n }

// Sum returns the hex SHA-256 of the bytes written.
func (d *Digest) Sum() string { return hex.EncodeToString(d.h.Sum(nil)) }

// Parts are the contents of a bundle for Write. Manifest.Files is filled in
// by Write.
type Parts struct {
	Manifest   Manifest
	Checkpoint []byte
	// Records writes records.ndjson; it must write exactly the bytes
	// RecordsDigest saw (else Write fails with ErrChanged, after them:
	// the check is their size and CRC-32C, which catches a store or spool
	// that changed underneath, not a forger; the verifier checks the
	// SHA-256).
	Records       func(w io.Writer) error
	RecordsDigest *Digest
	RangeProof    RangeProof
	Summary       []byte
	// Consistency, if not nil, is written as consistency.proof.
	Consistency [][]byte
	// OnSize, if set, is called with the bundle's size in bytes before
	// anything is written (-1 if it cannot be known ahead: records over
	// 8 GiB need extended tar headers).
	OnSize func(n int64)
}

// tarSize is the size of a tar file of regular files of the given sizes,
// each with a plain USTAR header, as archive/tar writes it: a 512-byte
// header and the data padded to 512 bytes per file, then two zero blocks.
func tarSize(sizes ...int64) int64 {
	n := int64(1024)
	for _, s := range sizes {
		if s >= 1<<33 {
			return -1
		}
		n += 512 + (s+511)/512*512
	}
	return n
}

// epoch is every tar header's mtime.
var epoch = time.Unix(0, 0).UTC()

// Write writes the bundle p describes to w as a tar file. The same parts
// give the same bytes.
func Write(w io.Writer, p Parts) error {
	rp, err := json.Marshal(p.RangeProof)
	if err != nil {
		return err
	}
	rp = append(rp, '\n')
	var cons []byte
	if p.Consistency != nil {
		for _, h := range p.Consistency {
			cons = base64.StdEncoding.AppendEncode(cons, h)
			cons = append(cons, '\n')
		}
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	m := p.Manifest
	if m.WitnessKeys == nil {
		m.WitnessKeys = []string{}
	}
	m.Files = map[string]string{
		FileCheckpoint: sum(p.Checkpoint),
		FileRecords:    p.RecordsDigest.Sum(),
		FileRangeProof: sum(rp),
		FileSummary:    sum(p.Summary),
	}
	if p.Consistency != nil {
		m.Files[FileConsistency] = sum(cons)
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	mb = append(mb, '\n')

	if p.OnSize != nil {
		sizes := []int64{int64(len(mb)), int64(len(p.Checkpoint)), p.RecordsDigest.Size(), int64(len(rp)), int64(len(p.Summary))}
		if p.Consistency != nil {
			sizes = append(sizes, int64(len(cons)))
		}
		p.OnSize(tarSize(sizes...))
	}
	tw := tar.NewWriter(w)
	file := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Size:     size,
			Mode:     0o644,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		})
	}
	small := func(name string, b []byte) error {
		if err := file(name, int64(len(b))); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := small(FileManifest, mb); err != nil {
		return err
	}
	if err := small(FileCheckpoint, p.Checkpoint); err != nil {
		return err
	}
	if err := file(FileRecords, p.RecordsDigest.Size()); err != nil {
		return err
	}
	check := &Digest{} // size and CRC only
	if err := p.Records(io.MultiWriter(tw, check)); err != nil {
		return err
	}
	if check.n != p.RecordsDigest.n || check.crc != p.RecordsDigest.crc {
		return fmt.Errorf("%w: %d bytes, %d digested", ErrChanged, check.Size(), p.RecordsDigest.Size())
	}
	if err := small(FileRangeProof, rp); err != nil {
		return err
	}
	if err := small(FileSummary, p.Summary); err != nil {
		return err
	}
	if p.Consistency != nil {
		if err := small(FileConsistency, cons); err != nil {
			return err
		}
	}
	return tw.Close()
}
