package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"indelible.dev/client"
	"indelible.dev/cmd/indelible/internal/witnesscli"
	"indelible.dev/httpapi"
	"indelible.dev/witness"
)

// Defaults of indelible witness.
const (
	defaultWitnessDir    = "./indelible-witness"
	defaultWitnessListen = "127.0.0.1:8081"
)

// Files inside the witness data directory (cmd/indelible/internal/witnesscli).
const (
	witnessKeyFile   = witnesscli.KeyFile
	witnessVKeyFile  = witnesscli.VKeyFile
	witnessTokenFile = witnesscli.TokenFile
	witnessStoreDir  = witnesscli.StoreDir
	witnessHWMFile   = witnesscli.HWMFile
)

type witnessConfig struct {
	dataDir  string
	listen   string
	name     string
	logs     []string
	peers    []string
	interval time.Duration
	rate     float64  // requests/s per client IP; 0 means no limit
	resume   bool     // continue origins whose store is behind the high-water mark
	tls      tlsFlags // --ca: trusted for HTTPS to peers and logs (gossip)
}

func init() {
	var cfg witnessConfig
	var adminCA string // --ca of forks and clear-fork
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Run a witness (c2sp.org/tlog-witness) that cosigns logs' checkpoints",
		Long: `witness runs a transparency-log witness: it cosigns checkpoints of the logs
given with --log after checking each is consistent with the last one it
cosigned, gossips with the peer witnesses given with --peer, and records fork
evidence when a log shows two views (it then refuses to cosign that log until
'indelible witness clear-fork ORIGIN').

On first start it creates the witness key in the data directory (witness.key,
mode 0600) and writes its cosignature/v1 verifier key to witness.vkey; it
prints the name, the verifier key and the URL.

--log VKEY[=URL] and --peer VKEY=URL are split at "=http" (base64 in a key may
contain "="). A log's URL (its tlog-tiles prefix) lets gossip build
consistency proofs between checkpoints of different sizes.

The witness keeps, beside its key, a high-water mark (witness.hwm: the latest
tree it cosigned for each log), written before any cosignature is released.
If the store is missing or behind it (a volume not mounted, a restore from an
older backup), the witness refuses to start and names the logs: cosigning from
such a store could sign a second root for a size it already cosigned. Restore
a store at least as new, or, if the store is lost, start once with
--resume-from-hwm: those logs continue from the marked tree (consistency is
still checked from its root; the monitoring checkpoint returns after the next
cosignature).

With --tls-cert and --tls-key it serves HTTPS (HTTP/2, TLS 1.2 or later).
--ca FILE names the certificate authorities trusted, instead of the system's,
when gossiping with peers and logs served over HTTPS. The admin commands
(forks, clear-fork) reach a running witness at the URL in DATA/witness.addr
(https:// with TLS, so its certificate must name the listening address, e.g.
127.0.0.1) and take --ca (or $INDELIBLE_CA) too.

Routes: POST /add-checkpoint, GET /<hex sha256 origin>/checkpoint,
GET /v1/witness/forks, POST /v1/witness/observe, /healthz, /metrics.`,
		Args: cobra.NoArgs,
		RunE: untilSignal(func(ctx context.Context, out io.Writer) error { return runWitness(ctx, cfg, out) }),
	}
	f := cmd.PersistentFlags()
	f.StringVar(&cfg.dataDir, "data", defaultWitnessDir, "data directory (key and store)")
	lf := cmd.Flags()
	lf.StringVar(&cfg.listen, "listen", defaultWitnessListen, "HTTP listen address")
	lf.StringVar(&cfg.name, "name", "", `witness name for a new key (default "`+witnesscli.DefaultName+`"); must match an existing key`)
	lf.StringArrayVar(&cfg.logs, "log", nil, "known log: its verifier key, optionally =URL of its tlog-tiles prefix (repeatable)")
	lf.StringArrayVar(&cfg.peers, "peer", nil, "peer witness: its cosignature/v1 verifier key =URL (repeatable)")
	lf.DurationVar(&cfg.interval, "gossip-interval", witness.DefaultGossipInterval, "time between gossip rounds")
	lf.Float64Var(&cfg.rate, "rate-limit", 0, "requests per second allowed per client IP (an IPv6 /64 is one client; bursts of twice that); over it, 429 with Retry-After (default 0: no limit)")
	cfg.tls.register(lf, "peers and logs")
	lf.BoolVar(&cfg.resume, "resume-from-hwm", false, "the store was lost: continue the logs it is behind on from the high-water mark in DATA/"+witnessHWMFile+" (see the long help)")

	forks := &cobra.Command{
		Use:   "forks",
		Short: "List the fork evidence the witness holds (JSON)",
		Long: `forks prints the witness's fork evidence as JSON. While the witness runs (its
store is locked by the running process) it asks it over loopback, at the
address in DATA/witness.addr; when it is stopped it reads the store directly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := caPool(adminCA)
			if err != nil {
				return err
			}
			return witnesscli.Forks(cmd.Context(), cfg.dataDir, pool, cmd.OutOrStdout())
		},
	}
	clear := &cobra.Command{
		Use:   "clear-fork ORIGIN",
		Short: "Let the witness cosign ORIGIN again after a fork (evidence is kept, marked cleared)",
		Long: `clear-fork lifts the refusal to cosign ORIGIN that fork evidence caused. The
evidence records are kept and marked cleared. While the witness runs it is
asked over loopback (address in DATA/witness.addr) with the admin token in
DATA/admin.token, which only the operator can read; when it is stopped the
store is changed directly.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := caPool(adminCA)
			if err != nil {
				return err
			}
			return witnesscli.ClearFork(cmd.Context(), cfg.dataDir, args[0], pool, cmd.OutOrStdout())
		},
	}
	caFlag(forks.Flags(), &adminCA)
	caFlag(clear.Flags(), &adminCA)
	cmd.AddCommand(forks, clear)
	rootCmd.AddCommand(cmd)
}

func runWitness(ctx context.Context, cfg witnessConfig, out io.Writer) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if cfg.rate < 0 {
		return fmt.Errorf("--rate-limit %v: want 0 (no limit) or a positive rate", cfg.rate)
	}
	tlsConfig, pool, err := cfg.tls.load()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dataDir, dataPerm); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	logs, err := witnesscli.ParseLogs(cfg.logs)
	if err != nil {
		return err
	}
	peers, err := witnesscli.ParsePeers(cfg.peers)
	if err != nil {
		return err
	}
	cosigner, created, err := witnesscli.Key(cfg.dataDir, cfg.name)
	if err != nil {
		return err
	}
	token, err := witnesscli.AdminToken(cfg.dataDir)
	if err != nil {
		return err
	}
	w, err := witness.Open(filepath.Join(cfg.dataDir, witnessStoreDir), witness.Options{
		Cosigner:       cosigner,
		Logs:           logs,
		Peers:          peers,
		GossipInterval: cfg.interval,
		Logger:         logger,
		// Gossip to peers and logs served over HTTPS trusts --ca. (Each
		// gossip call is also bounded by the witness's own timeout.)
		HTTPClient: &http.Client{Transport: client.NewTransport(pool), Timeout: client.DefaultTimeout},
		// The mark lives beside the key, outside the store, so losing
		// the store does not lose it.
		HighWaterFile:       filepath.Join(cfg.dataDir, witnessHWMFile),
		ResumeFromHighWater: cfg.resume,
	})
	if err != nil {
		return err
	}
	defer w.Close()

	srv := httpapi.New(httpapi.Config{Logger: logger, RateLimit: cfg.rate})
	srv.MountWitness(w, httpapi.WitnessConfig{AdminToken: token})
	hs := srv.HTTPServer(cfg.listen)
	hs.TLSConfig = tlsConfig
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	url := scheme(tlsConfig) + "://" + ln.Addr().String()
	removeAddr, err := witnesscli.WriteAddr(cfg.dataDir, url)
	if err != nil {
		ln.Close()
		return err
	}
	defer removeAddr()

	keyNote := ""
	if created {
		keyNote = fmt.Sprintf(" (new key: %s, verifier key in %s)", filepath.Join(cfg.dataDir, witnessKeyFile), filepath.Join(cfg.dataDir, witnessVKeyFile))
	}
	fmt.Fprintf(out, `Indelible witness
  name:         %s
  verifier key: %s%s
  logs:         %d known, %d peers (gossip every %s)
  data:         %s
  listening on  %s

A log uses it with:
  indelible serve --witness '%[2]s=%[8]s'
%[9]s`, cosigner.Name(), cosigner.VKey(), keyNote, len(logs), len(peers), cfg.interval, cfg.dataDir, url, caNote(tlsConfig))

	return serveUntil(ctx, hs, srv, serveFunc(hs, ln), logger, "store")
}
