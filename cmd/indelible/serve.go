package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/cmd/indelible/internal/banner"
	"indelible.dev/cmd/indelible/internal/eventsetup"
	"indelible.dev/cmd/indelible/internal/keyfile"
	"indelible.dev/cmd/indelible/internal/witnesscli"
	"indelible.dev/httpapi"
	"indelible.dev/ledger"
	"indelible.dev/mirror"
	"indelible.dev/witness"
)

// Defaults of indelible serve (README.md).
const (
	defaultDataDir = "./indelible-data"
	defaultListen  = "127.0.0.1:8080"
	defaultOrigin  = "indelible.local/log"
	// shutdownTimeout bounds the graceful shutdown: in-flight requests get
	// this long to finish before connections are closed.
	shutdownTimeout = 10 * time.Second
)

// Files inside the data directory.
const (
	logKeyFile = "log.key" // the log's signer key, 0600, created on first start
	logPubFile = "log.pub" // its verifier key
	ledgerDir  = "ledger"  // the pebble store
	dataPerm   = fs.FileMode(0o700)
)

// serveConfig is everything indelible serve runs from. Components that join
// the server later (witnessing, the events layer) add their fields here and
// their wiring to runServe.
type serveConfig struct {
	dataDir string   // data directory: keys and the store
	listen  string   // address of the HTTP listener
	origin  string   // log origin; "" means the key's name, or defaultOrigin for a new key
	keyFile string   // signer key file; "" means <dataDir>/log.key, created if missing
	mode    string   // "events" (the events API, events.go) or "raw" (POST /add)
	pprof   string   // if set, net/http/pprof is served on this (loopback) address
	cache   int      // pebble's block cache in MiB; 0 means the ledger's default
	tls     tlsFlags // --tls-cert, --tls-key: serve HTTPS; --ca: trusted for HTTPS to the witnesses (tls.go)
	// privateLog puts the log's read routes behind the read scope (events
	// mode only: raw mode has no tokens).
	privateLog bool

	witnesses     []string // --witness VKEY=URL: witnesses cosigning the checkpoints (witness.go)
	witnessQuorum int      // cosignatures a served checkpoint needs; 0 means all
	rateLimit     float64  // requests/s per client IP; 0 means no limit
	init          bool     // start a new log with an existing key that never signed (keyguard.go)
	masterKey     string   // events mode: master key file (events.go)
	keyInData     bool     // events mode: --allow-key-in-data (events.go)
	tokenRate     float64  // events mode: requests/s per token; 0 means no limit (events.go)
	tokenBurst    int      // events mode: burst per token
	retention     string   // events mode: --retention, e.g. 400d (retention.go)
	newAdminToken bool     // events mode: --new-admin-token, when the tokens were lost or no admin token works (events.go)
	bucket        string   // --bucket s3://NAME?...: the public mirror in object storage (docs/ha.md)
	store         string   // --store postgres://...: the store in PostgreSQL (store.go); "" means $INDELIBLE_STORE, then pebble in <data>/ledger

	streamMaxAge time.Duration // events mode: lifetime of one event stream connection

	// OpenTelemetry logs in (otlp.go), events mode.
	otlpListen        string // a second listener for POST /v1/logs
	otlpDefaultAction string // action of an OTLP record naming none
	rules             string // events mode: --rules FILE|DIR, alert rules (alerts.go)
	exports           string // events mode: --exports FILE (exports.go)
	publicURL         string // events mode: --public-url, the base of the exports' receipt URLs and the alerts' console links (exports.go)

	cluster clusterConfig // --lease, --node, --advertise (cluster.go)
	active  *activeNode   // set while runServe runs as a cluster's active node (cluster.go)
}

func init() {
	var cfg serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the log server",
		Long: `serve runs the Indelible log: a c2sp.org/tlog-tiles transparency log over
HTTP. On first start it creates the log's signer key in the data directory
(log.key, mode 0600) and its verifier key (log.pub), unless --key is given.

In events mode (the default) it serves the audit events API behind Bearer
tokens. On first start it also creates the master key that encrypts events at
rest, beside the data directory and not in it (<data>.master.key, 0600: 32
random bytes in hex; or give --master-key FILE, or set INDELIBLE_MASTER_KEY,
each holding the key in hex or base64; a key file inside the data directory
is refused unless --allow-key-in-data), and a first admin token, printed
once and written to admin.token (0600): a bootstrap token, which expires
after 24 hours or as soon as another admin token is made. When no admin token
works any more, --new-admin-token makes a new bootstrap token the same way
(recorded in the log). --mode raw
serves a generic log instead: POST /add appends the request body.
It prints the origin, the verifier key and curl examples, and shuts down
gracefully on SIGINT or SIGTERM: in-flight appends finish and the store is
closed.

The key never signs two histories: <key file>.hwm records the store it signs
for and the largest tree it signed, and serve refuses to start on a missing,
older or different store. --init starts a new log with an existing key that
has never signed one.

With --tls-cert and --tls-key it serves HTTPS (HTTP/2, TLS 1.2 or later) and
prints https:// URLs; plain HTTP to the port is refused. --ca FILE names the
certificate authorities trusted, instead of the system's, for witnesses
served over HTTPS.

--private-log (events mode) puts the log's otherwise public routes (GET
/checkpoint, /tile/..., /v1/proof/... and /metrics) behind a token with the
read scope: 401 without a token, 403 with one lacking the scope. Witnesses
are unaffected (the log pushes checkpoints and proofs to them); auditors pass
a read token (indelible audit --token). Raw mode refuses the flag: it has no
tokens.`,
		Args: cobra.NoArgs,
		RunE: untilSignal(func(ctx context.Context, out io.Writer) error { return runServe(ctx, cfg, out) }),
	}
	f := cmd.Flags()
	f.StringVar(&cfg.dataDir, "data", defaultDataDir, "data directory (keys and the store)")
	f.StringVar(&cfg.listen, "listen", defaultListen, "HTTP listen address")
	f.StringVar(&cfg.origin, "origin", "", `log origin (default: the key's name; "`+defaultOrigin+`" for a new key)`)
	f.StringVar(&cfg.keyFile, "key", "", "signer key file (default: <data>/log.key, created on first start)")
	f.StringVar(&cfg.mode, "mode", "events", `"events": the audit events API (/v1/events, Bearer tokens); "raw": a generic log, POST /add appends the body as an entry`)
	eventsFlags(f, &cfg)
	otlpFlags(f, &cfg)
	exportsFlags(f, &cfg)
	clusterFlags(f, &cfg)
	cfg.tls.register(f, "witnesses")
	f.BoolVar(&cfg.privateLog, "private-log", false, "events mode: the checkpoint, tiles, proofs and /metrics need a token with the read scope (default: public)")
	f.IntVar(&cfg.cache, "cache-size", 0, "the store's block cache in MiB (default 0: 64 MiB); proofs on a large log read a level-0 tile and its inner hashes (16 KiB per 256 entries) per proof, so 1 GiB serves a 10M-entry log from memory")
	f.StringVar(&cfg.pprof, "pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060)")
	f.StringVar(&cfg.store, "store", "", "the store: postgres://USER@HOST:PORT/DB?... keeps the log, events, tokens and erasures in PostgreSQL (default $"+envStoreVar+"; unset: pebble in <data>/ledger)")
	f.MarkHidden("pprof")
	f.StringArrayVar(&cfg.witnesses, "witness", nil, "witness cosigning checkpoints: its cosignature/v1 verifier key =URL (repeatable; split at \"=http\")")
	f.Float64Var(&cfg.rateLimit, "rate-limit", 0, "requests per second allowed per client IP (bursts of twice that); over it, 429 with Retry-After (default 0: no limit)")
	f.BoolVar(&cfg.init, "init", false, "start a new log with an existing key that has never signed one (refused if the key's high-water mark shows it has, or if the store exists)")
	f.StringVar(&cfg.rules, "rules", "", "events mode: alert rules, a YAML file or a directory of them (docs/alerts.md); SIGHUP reloads them")
	f.IntVar(&cfg.witnessQuorum, "witness-quorum", 0, "cosignatures a checkpoint needs before /checkpoint serves it (default: all witnesses)")
	f.StringVar(&cfg.bucket, "bucket", "", "mirror the log to S3-compatible object storage, s3://NAME?endpoint=URL&region=R&path_style=true "+
		"(credentials from the AWS SDK's environment); no checkpoint is released before the bucket has it (docs/ha.md)")
	rootCmd.AddCommand(cmd)
}

// runServe runs the server until ctx is done, then shuts it down gracefully.
func runServe(ctx context.Context, cfg serveConfig, out io.Writer) error {
	if cfg.mode != "raw" && cfg.mode != "events" {
		return fmt.Errorf("--mode %q: want events or raw", cfg.mode)
	}
	if cfg.cache < 0 {
		return fmt.Errorf("--cache-size %d: want 0 (the default) or a size in MiB", cfg.cache)
	}
	if cfg.rateLimit < 0 {
		return fmt.Errorf("--rate-limit %v: want 0 (no limit) or a positive rate", cfg.rateLimit)
	}
	tuneGC()
	if cfg.cluster.lease > 0 && cfg.active == nil {
		return runCluster(ctx, cfg, out) // cluster.go: runs this again as the active node
	}
	if cfg.tokenRate < 0 || cfg.tokenBurst < 0 {
		return fmt.Errorf("--token-rate %v, --token-burst %d: want 0 (no limit) or positive values", cfg.tokenRate, cfg.tokenBurst)
	}
	if cfg.streamMaxAge <= 0 {
		return fmt.Errorf("--stream-max-age %v: want a positive duration, e.g. 1h", cfg.streamMaxAge)
	}
	rules, err := loadServeRules(cfg) // a bad rules file: refuse to start
	if err != nil {
		return err
	}
	if cfg.privateLog && cfg.mode != "events" {
		return errors.New("--private-log needs --mode events: it puts the log behind tokens, and raw mode has none")
	}
	if err := checkOTLPFlags(cfg); err != nil {
		return err
	}
	tlsConfig, witnessCAs, err := cfg.tls.load()
	if err != nil {
		return err
	}
	exports, err := loadExports(cfg)
	if err != nil {
		return err
	}
	if cfg.pprof != "" {
		// Profiles reveal memory contents: loopback only.
		host, _, err := net.SplitHostPort(cfg.pprof)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("--pprof %q: want a loopback address such as 127.0.0.1:6060", cfg.pprof)
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := os.MkdirAll(cfg.dataDir, dataPerm); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	signer, vkey, keyFile, created, err := logKey(cfg)
	if err != nil {
		return err
	}

	wcfg, err := witnesscli.LogWitnesses(signer.Name(), cfg.witnesses, cfg.witnessQuorum, witnessCAs)
	if err != nil {
		return err
	}
	metrics := httpapi.NewMetrics()
	var hooks []ledger.PublishHook
	// fatal carries a mirror's fork evidence out: serving stops and serve
	// exits with it.
	ctx, fatal := context.WithCancelCause(ctx)
	defer fatal(nil)
	if cfg.bucket != "" {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return err
		}
		m, err := mirror.New(ctx, mirror.Config{Bucket: cfg.bucket, Verifier: v, Logger: logger, Registerer: metrics.Registry(),
			OnFatal: func(err error) { fatal(err) }})
		if err != nil {
			return err
		}
		hooks = append(hooks, m)
	}
	store, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	l, err := ledger.Open(filepath.Join(cfg.dataDir, ledgerDir), ledger.Options{
		Store:     store,
		Signer:    signer,
		CacheSize: int64(cfg.cache) << 20,
		KeyGuard:  keyGuard(keyFile, cfg.init || created),
		Logger:    logger,
		OnCommit:  metrics.ObserveCommit,
		// Witnessing runs beside ingestion; /checkpoint serves the newest
		// checkpoint meeting the quorum (see ledger/witnessing.go).
		Witnessing: wcfg,
		// The bucket mirror holds every checkpoint back until the bucket
		// has it (the release rule, mirror/mirror.go).
		Hooks: hooks,
	})
	if err != nil {
		if store != nil {
			store.Close()
		}
		return err
	}
	// The store is closed last, after the HTTP server has drained.
	defer func() {
		if err := l.Close(); err != nil {
			logger.Error("closing the ledger", "err", err)
		}
	}()

	if len(wcfg.Witnesses) > 0 {
		metrics.WatchWitnessing(l)
	}
	hcfg := httpapi.Config{Log: l, RawAppend: cfg.mode == "raw", Metrics: metrics, Logger: logger, RateLimit: cfg.rateLimit,
		PrivateLog: cfg.privateLog, OTLPDefaultAction: cfg.otlpDefaultAction}
	var es *eventsetup.Server
	if cfg.mode == "events" {
		retention, err := parseRetention(cfg.retention)
		if err != nil {
			return err
		}
		if es, err = eventsetup.Open(cfg.dataDir, eventsetup.Options{
			Key: eventsetup.KeyOptions{File: cfg.masterKey, AllowInData: cfg.keyInData}, NewAdminToken: cfg.newAdminToken}, l, logger, retention); err != nil {
			return err
		}
		defer es.Layer.Close() // before the ledger (defers run last first)
		// After the HTTP server, before the layer: queued read records
		// are appended, last-use times persisted.
		defer func() {
			if err := es.Audit.Close(); err != nil {
				logger.Error("closing the audit service", "err", err)
			}
		}()
		stopExports, err := startExports(exports, cfg, es, metrics, logger, tlsConfig != nil)
		if err != nil {
			return err
		}
		defer stopExports() // before the audit service and the layer
		es.Tokens.SetRateLimit(cfg.tokenRate, cfg.tokenBurst)
		hcfg.Events, hcfg.Tokens, hcfg.Audit = es.Layer, es.Tokens, es.Audit
		hcfg.StreamMaxAge = cfg.streamMaxAge
		// The web console at /, with the keys it verifies receipts with.
		hcfg.Console = &httpapi.ConsoleConfig{LogVKey: vkey, Quorum: cfg.witnessQuorum}
		for _, w := range cfg.witnesses {
			wk, _ := witness.ParseKeyURL(w)
			hcfg.Console.WitnessVKeys = append(hcfg.Console.WitnessVKeys, wk)
		}
	}
	var lnAddr atomic.Value // the listener's address, once it listens (GET /v1/cluster)
	if cfg.active != nil {
		hcfg.Cluster = cfg.active.activeHTTP(l, forwardKey(cfg, logger))
	} else {
		hcfg.Cluster = singleNode(l, &lnAddr, scheme(tlsConfig))
	}
	srv := httpapi.New(hcfg)
	hs := srv.HTTPServer(cfg.listen)
	hs.TLSConfig = tlsConfig
	var ln net.Listener
	if cfg.active != nil {
		ln = cfg.active.ln // the cluster node's, shared with its standby server
	} else if ln, err = net.Listen("tcp", cfg.listen); err != nil {
		return err
	}
	lnAddr.Store(ln.Addr().String())
	if rules != nil {
		console := cfg.publicURL
		if console == "" {
			console = receiptBase(ln.Addr().String(), tlsConfig != nil)
		}
		stopAlerts, err := startAlerts(cfg.rules, rules, es, metrics, logger, console)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopAlerts() // before the events layer closes
	}
	if cfg.pprof != "" {
		stopPprof, err := servePprof(cfg.pprof, logger)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopPprof()
	}

	cp, _ := l.Published()
	info := banner.Info{Mode: cfg.mode, Addr: ln.Addr().String(), TLS: tlsConfig != nil, PrivateLog: cfg.privateLog, Origin: signer.Name(), VKey: vkey,
		DataDir: cfg.dataDir, Size: cp.N, AdminTokenFile: filepath.Join(cfg.dataDir, adminTokenFile)}
	if created {
		info.KeyFile, info.PubFile = filepath.Join(cfg.dataDir, logKeyFile), filepath.Join(cfg.dataDir, logPubFile)
	}
	if es != nil {
		info.AdminToken, info.AdminTokenExpires = es.AdminToken, es.AdminTokenExpires
		if es.MasterKey.Created {
			info.MasterKeyFile = es.MasterKey.Path
		}
		if es.MasterKey.InData && !cfg.keyInData {
			info.MasterKeyInData, info.MasterKeyMoveTo = es.MasterKey.Path, eventsetup.DefaultMasterKeyPath(cfg.dataDir)
		}
	}
	banner.Print(out, info)
	otlpServer, err := startOTLP(cfg, srv, tlsConfig, logger, out)
	if err != nil {
		ln.Close()
		return err
	}
	if otlpServer != nil {
		// Both listeners drain together; the store closes after both.
		hs.RegisterOnShutdown(func() { otlpServer.Shutdown(context.Background()) })
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if otlpServer.Shutdown(sctx) != nil {
				otlpServer.Close()
			}
		}()
	}

	if cfg.active != nil {
		err = cfg.active.serve(ctx, srv, l, logger)
	} else {
		err = serveUntil(ctx, hs, srv, serveFunc(hs, ln), logger, "ledger")
	}
	if cause := context.Cause(ctx); err == nil && errors.Is(cause, mirror.ErrFork) {
		return cause
	}
	return err
}

// logKey returns the log's signer, verifier key and key file: from --key,
// from <data>/log.key, or newly created there (created is then true).
func logKey(cfg serveConfig) (signer note.Signer, vkey, file string, created bool, err error) {
	file = cfg.keyFile
	if file == "" {
		file = filepath.Join(cfg.dataDir, logKeyFile)
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			if err := checkKeyNotLost(cfg.dataDir); err != nil {
				return nil, "", "", false, err
			}
			origin := cfg.origin
			if origin == "" {
				origin = defaultOrigin
			}
			pub := filepath.Join(cfg.dataDir, logPubFile)
			if _, err := keyfile.Generate(origin, file, pub, false); err != nil {
				return nil, "", "", false, fmt.Errorf("creating the log key: %w", err)
			}
			created = true
		}
	}
	signer, vkey, err = keyfile.LoadSigner(file)
	if err != nil {
		return nil, "", "", false, err
	}
	if cfg.origin != "" && cfg.origin != signer.Name() {
		return nil, "", "", false, fmt.Errorf("--origin %q does not match the key %s, which is for %q", cfg.origin, file, signer.Name())
	}
	return signer, vkey, file, created, nil
}

// servePprof serves the runtime profiles on their own listener, so they are
// never exposed on the public address. It returns a function stopping it.
func servePprof(addr string, logger *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listener: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: httpapi.ReadHeaderTimeout}
	go hs.Serve(ln)
	logger.Info("pprof serving", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { hs.Close() }, nil
}
