// Package api is the one definition of the JSON wire types of Indelible's
// events API (/v1/...), shared by the server (package httpapi) and the Go
// client (package client): a field changes here, for both, or not at all.
// tessera's api/ package is the precedent.
//
// It is pure: plain structs, their JSON tags and encoders, the query's
// encoder and parser, no I/O. The events API's records (Record, Page, with
// the one encoder of a record's bytes, AppendRecord), its query (Query,
// with Values and ParseQuery), its events as writers send them (Event), the
// append replies and the tokens are here. The proof replies of the log's
// routes are client's InclusionProof and ConsistencyProof.
package api

import "time"

// Appended is one element of the reply of POST /v1/events and POST
// /v1/ingest/kubernetes, in request order. Receipt is set with
// ?wait=checkpoint: a c2sp.org/tlog-proof document.
type Appended struct {
	Index   int64  `json:"index"`
	ID      string `json:"id,omitempty"`
	Receipt string `json:"receipt,omitempty"`
}

// AppendReply is the reply of POST /v1/events and POST
// /v1/ingest/kubernetes.
type AppendReply struct {
	Events []Appended `json:"events"`
}

// Token is a token's public record (never its secret), as GET /v1/tokens
// lists it and POST /v1/tokens returns it.
type Token struct {
	Name     string    `json:"name"`
	Scopes   []string  `json:"scopes"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
	// Expires is when the token stops authenticating (zero: never); a
	// Bootstrap token (a server's own admin token) also stops once a newer
	// admin token is made.
	Expires   time.Time `json:"expires,omitzero"`
	Bootstrap bool      `json:"bootstrap,omitempty"`
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// NewToken is the reply of POST /v1/tokens: the token's public record and
// its secret, shown this once and never again.
type NewToken struct {
	Token
	Secret string `json:"token"`
}

// TokenList is the reply of GET /v1/tokens: every token's public record,
// revoked ones included, by name.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// Cluster is GET /v1/cluster: this node, its role ("active" or "standby"),
// the epoch it holds (active) or last saw (standby), the active node as the
// lease names it, and the log's published size as this node serves it.
type Cluster struct {
	Node   string      `json:"node"`
	Role   string      `json:"role"`
	Epoch  int64       `json:"epoch"`
	Active ClusterNode `json:"active"`
	Size   uint64      `json:"size"`
}

// ClusterNode names a node of a cluster and the URL it advertises.
type ClusterNode struct {
	Node string `json:"node"`
	URL  string `json:"url"`
}
