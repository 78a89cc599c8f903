package main

import (
	"github.com/spf13/pflag"

	"indelible.dev/cmd/indelible/internal/eventsetup"
	"indelible.dev/httpapi"
)

// Files of events mode inside the data directory (cmd/indelible/internal/eventsetup).
const (
	masterKeyFile  = eventsetup.MasterKeyFile
	tokensFile     = eventsetup.TokensFile
	adminTokenFile = eventsetup.AdminTokenFile
)

// eventsFlags registers the flags of events mode on serve.
// Per-token rate limit defaults: what a person or a well-behaved client
// does (a console page makes a handful of requests; a writer batching up to
// 1,000 events a request moves 100,000 events/s within it), low enough that
// one leaked or runaway token, in particular a read token sending queries
// that each decrypt up to the scan budget (eventstore.MaxScanDecrypts), cannot
// monopolise the server. A service POSTing events one by one at a higher
// rate batches them (NDJSON) or gets its own --token-rate.
const (
	defaultTokenRate  = 100
	defaultTokenBurst = 200
)

func eventsFlags(f *pflag.FlagSet, cfg *serveConfig) {
	f.Float64Var(&cfg.tokenRate, "token-rate", defaultTokenRate, "events mode: requests per second allowed per token (0: no limit); over it, 429 with Retry-After")
	f.IntVar(&cfg.tokenBurst, "token-burst", defaultTokenBurst, "events mode: burst of requests allowed per token above --token-rate")
	f.BoolVar(&cfg.newAdminToken, "new-admin-token", false, "events mode: make a new bootstrap admin token (printed once, written to <data>/"+adminTokenFile+", recorded in the log; it expires in 24h or once another admin token is made): the way back in when the tokens were lost or no admin token works")
	f.StringVar(&cfg.masterKey, "master-key", "", "events mode: file holding the 32-byte master key (hex or base64, or raw; default: $"+eventsetup.MasterKeyEnv+", else <data>"+eventsetup.MasterKeySuffix+" beside the data directory, created on first start)")
	f.BoolVar(&cfg.keyInData, "allow-key-in-data", false, "events mode: accept a master key file inside the data directory (a copy of the directory then decrypts every event)")
	f.DurationVar(&cfg.streamMaxAge, "stream-max-age", httpapi.DefaultStreamMaxAge, "events mode: how long one event stream connection lives at most; clients then resume with Last-Event-ID, authenticated and audited again")
	f.StringVar(&cfg.retention, "retention", "", "events mode: shred every UTC day of events entirely older than this (e.g. 400d, or a Go duration such as 36h; default: keep forever)")
}
