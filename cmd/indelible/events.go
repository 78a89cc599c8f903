package main

import (
	"github.com/spf13/pflag"

	"indelible.dev/internal/eventsetup"
)

// Files of events mode inside the data directory (internal/eventsetup).
const (
	masterKeyFile  = eventsetup.MasterKeyFile
	tokensFile     = eventsetup.TokensFile
	adminTokenFile = eventsetup.AdminTokenFile
)

// eventsFlags registers the flags of events mode on serve.
func eventsFlags(f *pflag.FlagSet, cfg *serveConfig) {
	f.StringVar(&cfg.masterKey, "master-key", "", "events mode: file holding the 32-byte master key (raw, hex or base64; default: $"+eventsetup.MasterKeyEnv+", else <data>/"+masterKeyFile+", created on first start)")
	f.StringVar(&cfg.retention, "retention", "", "events mode: shred every UTC day of events entirely older than this (e.g. 400d, or a Go duration such as 36h; default: keep forever)")
}
