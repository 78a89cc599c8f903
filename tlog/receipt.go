package tlog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// ReceiptHeader is the first line of a c2sp.org/tlog-proof receipt.
const ReceiptHeader = "c2sp.org/tlog-proof@v1"

// MaxReceiptExtra bounds the opaque extra data a receipt may carry.
const MaxReceiptExtra = 1 << 20

// ErrMalformedReceipt is returned, possibly wrapped, for any receipt that
// does not follow c2sp.org/tlog-proof exactly.
var ErrMalformedReceipt = errors.New("malformed receipt")

// Receipt is an offline inclusion proof (c2sp.org/tlog-proof): the index of
// one entry, its RFC 6962 inclusion proof, and the signed (and usually
// cosigned) checkpoint the proof leads to. Extra is optional opaque data that
// the receipt carries unauthenticated (Indelible puts salt || event bytes
// there, so the receipt alone recomputes the leaf).
type Receipt struct {
	Extra      []byte
	Index      int64
	Proof      tlog.RecordProof
	Checkpoint []byte // the signed checkpoint note, verbatim
}

// String returns the receipt in its text form.
func (r Receipt) String() string {
	var b strings.Builder
	b.WriteString(ReceiptHeader + "\n")
	if r.Extra != nil {
		b.WriteString("extra ")
		b.WriteString(base64.StdEncoding.EncodeToString(r.Extra))
		b.WriteByte('\n')
	}
	b.WriteString("index ")
	b.WriteString(strconv.FormatInt(r.Index, 10))
	b.WriteByte('\n')
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.String()
}

// ParseReceipt parses a receipt strictly. It does not verify the checkpoint's
// signatures or the proof: see VerifyReceipt.
func ParseReceipt(data []byte) (Receipt, error) {
	bad := func(format string, args ...any) (Receipt, error) {
		return Receipt{}, fmt.Errorf("%w: "+format, append([]any{ErrMalformedReceipt}, args...)...)
	}
	if len(data) > MaxCheckpointSize+4*MaxReceiptExtra/3+4096 {
		return bad("too large")
	}
	line := func() (string, bool) {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return "", false
		}
		l := string(data[:i])
		data = data[i+1:]
		return l, true
	}
	l, ok := line()
	if !ok || l != ReceiptHeader {
		return bad("missing %q header line", ReceiptHeader)
	}
	var r Receipt
	l, ok = line()
	if !ok {
		return bad("truncated")
	}
	if rest, ok := strings.CutPrefix(l, "extra "); ok {
		if base64.StdEncoding.EncodedLen(MaxReceiptExtra) < len(rest) {
			return bad("extra data too large")
		}
		extra, err := base64.StdEncoding.Strict().DecodeString(rest)
		if err != nil || base64.StdEncoding.EncodeToString(extra) != rest {
			return bad("extra line is not canonical base64")
		}
		r.Extra = extra
		if l, ok = line(); !ok {
			return bad("truncated")
		}
	}
	idx, ok := strings.CutPrefix(l, "index ")
	if !ok {
		return bad("missing index line")
	}
	i, err := ParseSize(idx)
	if err != nil {
		return bad("index: %v", err)
	}
	r.Index = i
	r.Proof = tlog.RecordProof{}
	for {
		l, ok = line()
		if !ok {
			return bad("truncated proof")
		}
		if l == "" {
			break
		}
		if len(r.Proof) >= MaxProofHashes {
			return bad("more than %d proof hashes", MaxProofHashes)
		}
		h, err := ParseHash(l)
		if err != nil {
			return bad("proof line: %v", err)
		}
		r.Proof = append(r.Proof, h)
	}
	if len(data) == 0 {
		return bad("missing checkpoint")
	}
	if _, _, ok := SplitNote(data); !ok || !bytes.HasSuffix(data, []byte("\n")) {
		return bad("checkpoint is not a signed note")
	}
	r.Checkpoint = bytes.Clone(data)
	return r, nil
}
