package client

import (
	"encoding/base64"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	itlog "indelible.dev/tlog"
)

// The wire types of Indelible's proof endpoints. The server (httpapi) encodes
// them and every client (this package, the auditor, the CLI, the load
// generator, the tests) decodes them: one definition each.

// InclusionProof is the JSON body of GET /v1/proof/inclusion: the RFC 6962
// inclusion proof of entry Index in the tree of size TreeSize, each hash in
// standard base64.
type InclusionProof struct {
	Index    int64    `json:"index"`
	TreeSize int64    `json:"tree_size"`
	Hashes   []string `json:"hashes"`
}

// ConsistencyProof is the JSON body of GET /v1/proof/consistency: the RFC
// 6962 consistency proof from the tree of size From to the tree of size To,
// each hash in standard base64.
type ConsistencyProof struct {
	From   int64    `json:"from"`
	To     int64    `json:"to"`
	Hashes []string `json:"hashes"`
}

// NewInclusionProof returns the wire form of proof p of entry i in the tree
// of size n.
func NewInclusionProof(i, n int64, p tlog.RecordProof) InclusionProof {
	return InclusionProof{Index: i, TreeSize: n, Hashes: EncodeHashes(p)}
}

// NewConsistencyProof returns the wire form of proof p from size m to size n.
func NewConsistencyProof(m, n int64, p tlog.TreeProof) ConsistencyProof {
	return ConsistencyProof{From: m, To: n, Hashes: EncodeHashes(p)}
}

// Proof decodes the hashes of p. It checks their encoding and number, not
// the proof (see indelible.dev/tlog.CheckInclusion).
func (p InclusionProof) Proof() (tlog.RecordProof, error) {
	return DecodeHashes(p.Hashes)
}

// Proof decodes the hashes of p. It checks their encoding and number, not
// the proof (see indelible.dev/tlog.CheckConsistency).
func (p ConsistencyProof) Proof() (tlog.TreeProof, error) {
	return DecodeHashes(p.Hashes)
}

// EncodeHashes returns hs in standard base64, never nil (an empty proof
// encodes as "hashes":[]).
func EncodeHashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

// DecodeHashes decodes standard base64 proof hashes, at most
// indelible.dev/tlog.MaxProofHashes of them, each exactly 32 bytes.
func DecodeHashes(hs []string) ([]tlog.Hash, error) {
	if len(hs) > itlog.MaxProofHashes {
		return nil, fmt.Errorf("%d hashes, at most %d", len(hs), itlog.MaxProofHashes)
	}
	out := make([]tlog.Hash, len(hs))
	for i, s := range hs {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("hash %d is not base64 of 32 bytes", i)
		}
		copy(out[i][:], b)
	}
	return out, nil
}
