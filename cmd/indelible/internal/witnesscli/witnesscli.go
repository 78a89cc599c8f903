// Package witnesscli holds what the indelible witness command does besides
// wiring: the --log and --peer flags, the files of the data directory (key,
// admin token, address of the running witness), the admin calls that
// forks and clear-fork make to a running witness or to the stopped store,
// and the log side's witness configuration for indelible serve.
package witnesscli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/client"
	"indelible.dev/cmd/indelible/internal/keyfile"
	"indelible.dev/ledger"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// DefaultName is the witness name of a new key.
const DefaultName = "indelible.local/witness"

// Files inside the witness data directory.
const (
	KeyFile      = "witness.key"  // cosigner key, 0600, created on first start
	VKeyFile     = "witness.vkey" // its cosignature/v1 verifier key
	TokenFile    = "admin.token"  // admin token for clear-fork while running, 0600
	AddrFile     = "witness.addr" // URL of the running witness; removed on exit
	StoreDir     = "store"        // the pebble store
	HWMFile      = "witness.hwm"  // high-water mark: latest cosigned tree per origin, 0600
	adminTimeout = 10 * time.Second
)

// WriteAddr writes the URL of the running witness (http:// or https:// and
// its listener's address) to dir, for forks and clear-fork, and returns a
// function removing it.
func WriteAddr(dir, u string) (func(), error) {
	file := filepath.Join(dir, AddrFile)
	if err := os.WriteFile(file, []byte(u+"\n"), keyfile.PublicPerm); err != nil {
		return nil, err
	}
	return func() { os.Remove(file) }, nil
}

// ParseLogs turns --log flags into known logs; keys with the same
// name are one log with several keys.
func ParseLogs(specs []string) ([]witness.Log, error) {
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

// ParsePeers turns --peer flags into peers.
func ParsePeers(specs []string) ([]witness.Peer, error) {
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

// Key loads the cosigner key from dir, creating it on first start.
func Key(dir, name string) (*itlog.Cosigner, bool, error) {
	file := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(file)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		if name == "" {
			name = DefaultName
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
	vfile := filepath.Join(dir, VKeyFile)
	if err := keyfile.Write(vfile, c.VKey()+"\n", keyfile.PublicPerm, true); err != nil {
		return nil, false, err
	}
	return c, created, nil
}

// AdminToken returns the admin token of dir, creating it (0600) if missing.
func AdminToken(dir string) (string, error) {
	file := filepath.Join(dir, TokenFile)
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

// adminClient returns the HTTP client of the admin calls: rootCAs (nil:
// the system's roots) are the authorities trusted for a witness serving
// HTTPS.
func adminClient(rootCAs *x509.CertPool) *http.Client {
	return &http.Client{Transport: client.NewTransport(rootCAs), Timeout: adminTimeout}
}

// running returns the URL of the witness running on dir, or "" if none
// answers (no address file, or a stale one). A witness that answers with a
// certificate hc does not trust is an error: falling back to the store,
// which the running witness holds locked, would hide the real problem.
func running(ctx context.Context, dir string, hc *http.Client) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, AddrFile))
	if err != nil {
		return "", nil
	}
	u := strings.TrimSpace(string(b))
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		u = "http://" + u // written by an older witness: a bare address
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/healthz", nil)
	if err != nil {
		return "", nil
	}
	resp, err := hc.Do(req)
	if client.IsCertificateError(err) {
		return "", fmt.Errorf("witnesscli: the witness running at %s: %w", u, err)
	}
	if err != nil {
		return "", nil
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil
	}
	return u, nil
}

// openOffline opens the witness store of a stopped witness.
func openOffline(dir string) (*witness.Witness, error) {
	cosigner, _, err := Key(dir, "")
	if err != nil {
		return nil, err
	}
	w, err := witness.Open(filepath.Join(dir, StoreDir), witness.Options{Cosigner: cosigner, GossipInterval: -1})
	if err != nil {
		return nil, fmt.Errorf("%w (is the witness running? its address file %s is missing or it does not answer)", err, filepath.Join(dir, AddrFile))
	}
	return w, nil
}

// Forks prints the fork evidence of the witness of dir as JSON: asked over
// HTTP(S) if it runs (trusting rootCAs for HTTPS, nil: the system's roots),
// else read from its store.
func Forks(ctx context.Context, dir string, rootCAs *x509.CertPool, out io.Writer) error {
	hc := adminClient(rootCAs)
	u, err := running(ctx, dir, hc)
	if err != nil {
		return err
	}
	if u != "" {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/witness/forks", nil)
		resp, err := hc.Do(req)
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

// ClearFork lets the witness of dir cosign origin again: asked over
// HTTP(S) with the admin token of dir if it runs (trusting rootCAs for
// HTTPS, nil: the system's roots), else changed in its store.
func ClearFork(ctx context.Context, dir, origin string, rootCAs *x509.CertPool, out io.Writer) error {
	hc := adminClient(rootCAs)
	u, err := running(ctx, dir, hc)
	if err != nil {
		return err
	}
	if u != "" {
		token, err := os.ReadFile(filepath.Join(dir, TokenFile))
		if err != nil {
			return fmt.Errorf("reading the admin token: %w", err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u+"/v1/witness/clear-fork?origin="+url.QueryEscape(origin), nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := hc.Do(req)
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

// LogWitnesses builds the log side's witness configuration from
// indelible serve's --witness VKEY=URL flags and --witness-quorum, with the
// rule of tlog.Policy: no witness key named like the log's origin (it could
// stand in for the log with clients that look up keys by name), no witness
// key twice. rootCAs (nil: the system's roots) are the certificate
// authorities trusted for witnesses served over HTTPS.
func LogWitnesses(origin string, specs []string, quorum int, rootCAs *x509.CertPool) (ledger.WitnessConfig, error) {
	tr := client.NewTransport(rootCAs)
	var cfg ledger.WitnessConfig
	seen := map[string]bool{}
	for _, s := range specs {
		vkey, u := witness.ParseKeyURL(s)
		if u == "" {
			return cfg, fmt.Errorf("--witness %q: want VKEY=URL", s)
		}
		c, err := witness.NewClient(vkey, u, &http.Client{Transport: tr, Timeout: ledger.DefaultWitnessTimeout})
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
	monitor(cfg, tr)
	return cfg, nil
}

// monitoredWitness is a witness client that can also read the witness's
// monitoring endpoint, so the ledger can ask at start what it last cosigned
// (ledger.WitnessMonitor).
type monitoredWitness struct {
	*witness.Client
	hc *http.Client
}

// monitor wraps the configured witnesses as monitoredWitness.
func monitor(cfg ledger.WitnessConfig, tr http.RoundTripper) {
	hc := &http.Client{
		Transport: tr,
		Timeout:   ledger.DefaultWitnessTimeout,
		// A witness answers for itself: never follow a redirect elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for i, w := range cfg.Witnesses {
		if c, ok := w.(*witness.Client); ok {
			cfg.Witnesses[i] = monitoredWitness{Client: c, hc: hc}
		}
	}
}

// LatestCheckpoint reads GET <url>/<hex sha256 of origin>/checkpoint.
func (m monitoredWitness) LatestCheckpoint(ctx context.Context, origin string) ([]byte, error) {
	h := sha256.Sum256([]byte(origin))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL()+"/"+hex.EncodeToString(h[:])+"/checkpoint", nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil // the witness knows no checkpoint of this log
	default:
		return nil, fmt.Errorf("witness %s: monitoring endpoint answered %d", m.URL(), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, itlog.MaxCheckpointSize+1))
	if err != nil {
		return nil, fmt.Errorf("witness %s: reading the monitoring endpoint: %w", m.URL(), err)
	}
	if len(body) > itlog.MaxCheckpointSize {
		return nil, fmt.Errorf("witness %s: checkpoint larger than %d bytes", m.URL(), itlog.MaxCheckpointSize)
	}
	return body, nil
}
