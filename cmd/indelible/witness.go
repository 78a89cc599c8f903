package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/httpapi"
	"indelible.dev/internal/keyfile"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// Defaults of indelible witness.
const (
	defaultWitnessDir    = "./indelible-witness"
	defaultWitnessListen = "127.0.0.1:8081"
	defaultWitnessName   = "indelible.local/witness"
)

// Files inside the witness data directory.
const (
	witnessKeyFile   = "witness.key"  // cosigner key, 0600, created on first start
	witnessVKeyFile  = "witness.vkey" // its cosignature/v1 verifier key
	witnessTokenFile = "admin.token"  // admin token for clear-fork while running, 0600
	witnessAddrFile  = "witness.addr" // address of the running witness; removed on exit
	witnessStoreDir  = "store"        // the pebble store
	witnessHWMFile   = "witness.hwm"  // high-water mark: latest cosigned tree per origin, 0600
	adminTimeout     = 10 * time.Second
)

type witnessConfig struct {
	dataDir  string
	listen   string
	name     string
	logs     []string
	peers    []string
	interval time.Duration
	rate     float64 // requests/s per client IP; 0 means no limit
	resume   bool    // continue origins whose store is behind the high-water mark
}

func init() {
	var cfg witnessConfig
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

Routes: POST /add-checkpoint, GET /<hex sha256 origin>/checkpoint,
GET /v1/witness/forks, POST /v1/witness/observe, /healthz, /metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runWitness(ctx, cfg, cmd.OutOrStdout())
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&cfg.dataDir, "data", defaultWitnessDir, "data directory (key and store)")
	lf := cmd.Flags()
	lf.StringVar(&cfg.listen, "listen", defaultWitnessListen, "HTTP listen address")
	lf.StringVar(&cfg.name, "name", "", `witness name for a new key (default "`+defaultWitnessName+`"); must match an existing key`)
	lf.StringArrayVar(&cfg.logs, "log", nil, "known log: its verifier key, optionally =URL of its tlog-tiles prefix (repeatable)")
	lf.StringArrayVar(&cfg.peers, "peer", nil, "peer witness: its cosignature/v1 verifier key =URL (repeatable)")
	lf.DurationVar(&cfg.interval, "gossip-interval", witness.DefaultGossipInterval, "time between gossip rounds")
	lf.Float64Var(&cfg.rate, "rate-limit", 0, "requests per second allowed per client IP (an IPv6 /64 is one client; bursts of twice that); over it, 429 with Retry-After (default 0: no limit)")
	lf.BoolVar(&cfg.resume, "resume-from-hwm", false, "the store was lost: continue the logs it is behind on from the high-water mark in DATA/"+witnessHWMFile+" (see the long help)")

	forks := &cobra.Command{
		Use:   "forks",
		Short: "List the fork evidence the witness holds (JSON)",
		Long: `forks prints the witness's fork evidence as JSON. While the witness runs (its
store is locked by the running process) it asks it over loopback, at the
address in DATA/witness.addr; when it is stopped it reads the store directly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWitnessForks(cmd.Context(), cfg.dataDir, cmd.OutOrStdout())
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
			return runWitnessClearFork(cmd.Context(), cfg.dataDir, args[0], cmd.OutOrStdout())
		},
	}
	cmd.AddCommand(forks, clear)
	rootCmd.AddCommand(cmd)
}

// parseWitnessLogs turns --log flags into known logs; keys with the same
// name are one log with several keys.
func parseWitnessLogs(specs []string) ([]witness.Log, error) {
	var logs []witness.Log
	idx := map[string]int{}
	for _, s := range specs {
		vkey, u := witness.ParseKeyURL(s)
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, fmt.Errorf("--log %q: not a log verifier key: %w", s, err)
		}
		if u != "" {
			if _, err := url.Parse(u); err != nil {
				return nil, fmt.Errorf("--log %q: %w", s, err)
			}
		}
		i, ok := idx[v.Name()]
		if !ok {
			i = len(logs)
			idx[v.Name()] = i
			logs = append(logs, witness.Log{Origin: v.Name()})
		}
		logs[i].Verifiers = append(logs[i].Verifiers, v)
		if u != "" {
			logs[i].URL = u
		}
	}
	return logs, nil
}

// parsePeers turns --peer flags into peers.
func parsePeers(specs []string) ([]witness.Peer, error) {
	var peers []witness.Peer
	for _, s := range specs {
		vkey, u := witness.ParseKeyURL(s)
		if u == "" {
			return nil, fmt.Errorf("--peer %q: want VKEY=URL", s)
		}
		v, err := itlog.NewCosignatureVerifier(vkey)
		if err != nil {
			return nil, fmt.Errorf("--peer %q: not a cosignature/v1 verifier key: %w", s, err)
		}
		peers = append(peers, witness.Peer{Verifier: v, URL: u})
	}
	return peers, nil
}

// witnessKey loads the cosigner key from dir, creating it on first start.
func witnessKey(dir, name string) (*itlog.Cosigner, bool, error) {
	file := filepath.Join(dir, witnessKeyFile)
	b, err := os.ReadFile(file)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		if name == "" {
			name = defaultWitnessName
		}
		if !itlog.ValidOrigin(name) {
			return nil, false, fmt.Errorf("--name %q: want a non-empty name without spaces or \"+\"", name)
		}
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, false, err
		}
		if err := keyfile.Write(file, itlog.CosignerKey(name, priv)+"\n", keyfile.SecretPerm, false); err != nil {
			return nil, false, err
		}
		b, err = os.ReadFile(file)
		if err != nil {
			return nil, false, err
		}
		created = true
	} else if err != nil {
		return nil, false, fmt.Errorf("reading witness key: %w", err)
	}
	keyName, priv, err := itlog.ParseCosignerKey(string(b))
	if err != nil {
		// The error does not include the key.
		return nil, false, fmt.Errorf("witness key %s: %w", file, err)
	}
	if name != "" && name != keyName {
		return nil, false, fmt.Errorf("--name %q does not match the key %s, which is for %q", name, file, keyName)
	}
	c, err := itlog.NewCosigner(keyName, priv, nil)
	if err != nil {
		return nil, false, err
	}
	vfile := filepath.Join(dir, witnessVKeyFile)
	if err := keyfile.Write(vfile, c.VKey()+"\n", keyfile.PublicPerm, true); err != nil {
		return nil, false, err
	}
	return c, created, nil
}

// adminToken returns the admin token of dir, creating it (0600) if missing.
func adminToken(dir string) (string, error) {
	file := filepath.Join(dir, witnessTokenFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		var r [32]byte
		rand.Read(r[:])
		tok := hex.EncodeToString(r[:])
		if err := keyfile.Write(file, tok+"\n", keyfile.SecretPerm, false); err != nil {
			return "", err
		}
		return tok, nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func runWitness(ctx context.Context, cfg witnessConfig, out io.Writer) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if cfg.rate < 0 {
		return fmt.Errorf("--rate-limit %v: want 0 (no limit) or a positive rate", cfg.rate)
	}
	if err := os.MkdirAll(cfg.dataDir, dataPerm); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	logs, err := parseWitnessLogs(cfg.logs)
	if err != nil {
		return err
	}
	peers, err := parsePeers(cfg.peers)
	if err != nil {
		return err
	}
	cosigner, created, err := witnessKey(cfg.dataDir, cfg.name)
	if err != nil {
		return err
	}
	token, err := adminToken(cfg.dataDir)
	if err != nil {
		return err
	}
	w, err := witness.Open(filepath.Join(cfg.dataDir, witnessStoreDir), witness.Options{
		Cosigner:       cosigner,
		Logs:           logs,
		Peers:          peers,
		GossipInterval: cfg.interval,
		Logger:         logger,
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
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	addrFile := filepath.Join(cfg.dataDir, witnessAddrFile)
	if err := os.WriteFile(addrFile, []byte(ln.Addr().String()+"\n"), keyfile.PublicPerm); err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(addrFile)

	keyNote := ""
	if created {
		keyNote = fmt.Sprintf(" (new key: %s, verifier key in %s)", filepath.Join(cfg.dataDir, witnessKeyFile), filepath.Join(cfg.dataDir, witnessVKeyFile))
	}
	fmt.Fprintf(out, `Indelible witness
  name:         %s
  verifier key: %s%s
  logs:         %d known, %d peers (gossip every %s)
  data:         %s
  listening on  http://%s

A log uses it with:
  indelible serve --witness '%[2]s=http://%[8]s'
`, cosigner.Name(), cosigner.VKey(), keyNote, len(logs), len(peers), cfg.interval, cfg.dataDir, ln.Addr().String())

	return serveUntil(ctx, hs, srv, func() error { return hs.Serve(ln) }, logger, "store")
}

// runningWitness returns the URL of the witness running on dir, or "" if
// none answers.
func runningWitness(ctx context.Context, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, witnessAddrFile))
	if err != nil {
		return ""
	}
	u := "http://" + strings.TrimSpace(string(b))
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return u
}

// openOffline opens the witness store of a stopped witness.
func openOffline(dir string) (*witness.Witness, error) {
	cosigner, _, err := witnessKey(dir, "")
	if err != nil {
		return nil, err
	}
	w, err := witness.Open(filepath.Join(dir, witnessStoreDir), witness.Options{Cosigner: cosigner, GossipInterval: -1})
	if err != nil {
		return nil, fmt.Errorf("%w (is the witness running? its address file %s is missing or it does not answer)", err, filepath.Join(dir, witnessAddrFile))
	}
	return w, nil
}

func runWitnessForks(ctx context.Context, dir string, out io.Writer) error {
	if u := runningWitness(ctx, dir); u != "" {
		ctx, cancel := context.WithTimeout(ctx, adminTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/witness/forks", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var v any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			return fmt.Errorf("reading fork list: %w", err)
		}
		return printJSON(out, v)
	}
	w, err := openOffline(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	forks, err := w.Forks()
	if err != nil {
		return err
	}
	return printJSON(out, map[string]any{"forks": forks})
}

func runWitnessClearFork(ctx context.Context, dir, origin string, out io.Writer) error {
	if u := runningWitness(ctx, dir); u != "" {
		token, err := os.ReadFile(filepath.Join(dir, witnessTokenFile))
		if err != nil {
			return fmt.Errorf("reading the admin token: %w", err)
		}
		ctx, cancel := context.WithTimeout(ctx, adminTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u+"/v1/witness/clear-fork?origin="+url.QueryEscape(origin), nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("clear-fork: witness answered %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		_, err = out.Write(body)
		return err
	}
	w, err := openOffline(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	n, err := w.ClearFork(origin)
	if err != nil {
		return err
	}
	return printJSON(out, map[string]any{"origin": origin, "cleared": n})
}

func printJSON(out io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

// witnessingConfig builds the log side's witness configuration from
// indelible serve's --witness VKEY=URL flags and --witness-quorum, with the
// rule of tlog.Policy: no witness key named like the log's origin (it could
// stand in for the log with clients that look up keys by name), no witness
// key twice.
func witnessingConfig(origin string, specs []string, quorum int) (ledger.WitnessConfig, error) {
	var cfg ledger.WitnessConfig
	seen := map[string]bool{}
	for _, s := range specs {
		vkey, u := witness.ParseKeyURL(s)
		if u == "" {
			return cfg, fmt.Errorf("--witness %q: want VKEY=URL", s)
		}
		c, err := witness.NewClient(vkey, u, &http.Client{Timeout: ledger.DefaultWitnessTimeout})
		if err != nil {
			return cfg, fmt.Errorf("--witness: %w", err)
		}
		if c.Verifier().Name() == origin {
			return cfg, fmt.Errorf("--witness %q: the witness key has the log's own name %q: a witness must never stand in for the log", s, origin)
		}
		id := fmt.Sprintf("%s+%08x", c.Verifier().Name(), c.Verifier().KeyHash())
		if seen[id] {
			return cfg, fmt.Errorf("--witness %q: witness key %s given twice", s, id)
		}
		seen[id] = true
		cfg.Witnesses = append(cfg.Witnesses, c)
	}
	if quorum < 0 || quorum > len(cfg.Witnesses) {
		return cfg, fmt.Errorf("--witness-quorum %d with %d witnesses", quorum, len(cfg.Witnesses))
	}
	cfg.Quorum = quorum
	return cfg, nil
}
