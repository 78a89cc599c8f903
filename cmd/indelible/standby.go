package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"indelible.dev/audited"
	"indelible.dev/auth"
	"indelible.dev/cluster"
	"indelible.dev/cmd/indelible/internal/keyfile"
	"indelible.dev/httpapi"
	"indelible.dev/ledger"
	"indelible.dev/ledger/kv/pgkv"
)

// standbyRefresh is how often a standby's view looks for a newer released
// checkpoint and reloads the tokens: the bound on how far its reads lag the
// active node's releases, and on how long a token revoked on the active
// node still authenticates on a standby (docs/ha.md, "Standby").
const standbyRefresh = 250 * time.Millisecond

// standbyReadTimeout bounds each read of the store by a standby's view.
const standbyReadTimeout = 5 * time.Second

// standbyView is a standby's read-only view of the shared store: the log as
// the active node released it (ledger.OpenReader), the tokens (with
// --private-log: the only token checks it makes itself), and the HTTP
// server answering the log's public reads from them and forwarding the rest
// to the active node (httpapi.ClusterConfig.Hold).
type standbyView struct {
	log    *ledger.Log
	tokens *auth.Store // nil without --private-log
	srv    *httpapi.Server

	stop chan struct{} // closed by close: the token reloader stops
	done chan struct{} // closed when it has

	mu     sync.RWMutex // held for reading by each local read
	closed bool
}

// openStandbyView opens a standby's view of the store at dsn. It writes
// nothing to the store: no schema, no epoch, no key guard mark.
func openStandbyView(ctx context.Context, cfg serveConfig, dsn string, lease *cluster.Lease, useTLS bool, forwardKey []byte, logger *slog.Logger) (*standbyView, error) {
	v, err := viewVerifier(cfg)
	if err != nil {
		return nil, err
	}
	vdsn, err := viewDSN(dsn, cfg.cluster.node)
	if err != nil {
		return nil, err
	}
	store, err := pgkv.Open(ctx, vdsn, pgkv.Options{ReadOnly: true, Logger: logger, Timeout: standbyReadTimeout})
	if err != nil {
		return nil, fmt.Errorf("opening the store %s to read: %w", redactURL(dsn), err)
	}
	l, err := ledger.OpenReader(store, ledger.ReaderOptions{Verifier: v, Refresh: standbyRefresh, Logger: logger})
	if err != nil {
		return nil, err // OpenReader closed the store
	}
	sv := &standbyView{log: l, stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.privateLog {
		// The only token checks a standby makes itself: those of the
		// log's reads (every other authenticated route is forwarded).
		if sv.tokens, err = audited.OpenTokens(l, time.Now); err != nil {
			l.Close()
			return nil, fmt.Errorf("reading the tokens: %w", err)
		}
	}
	cc := standbyCluster(lease, l, cfg, useTLS, forwardKey)
	cc.Hold = sv.hold
	sv.srv = httpapi.New(httpapi.Config{Log: l, Tokens: sv.tokens, PrivateLog: cfg.privateLog, Logger: logger, RateLimit: cfg.rateLimit,
		Cluster: cc})
	go sv.reloadTokens(logger)
	return sv, nil
}

// viewDSN is dsn with the view's sessions named "indelible-view:NODE"
// (pg_stat_activity tells them from the lease's and the active node's;
// a takeover does not end them: they hold no lock and write nothing).
func viewDSN(dsn, node string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", errors.New("the store's URL does not parse (not shown: it may hold a password)")
	}
	q := u.Query()
	q.Set("application_name", "indelible-view:"+node)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// viewVerifier returns the log's verifier key, from the signer key file
// serve uses (--key, or <data>/log.key). A standby never creates a key.
func viewVerifier(cfg serveConfig) (note.Verifier, error) {
	file := cfg.keyFile
	if file == "" {
		file = filepath.Join(cfg.dataDir, logKeyFile)
	}
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("the log key %s: %w", file, err)
	}
	_, vkey, err := keyfile.LoadSigner(file)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// hold is httpapi.ClusterConfig.Hold: a local read runs only while the view
// is open, and close waits for the reads under way.
func (sv *standbyView) hold() (func(), bool) {
	sv.mu.RLock()
	if sv.closed {
		sv.mu.RUnlock()
		return nil, false
	}
	return sv.mu.RUnlock, true
}

// reloadTokens follows the token changes the active node writes, every
// standbyRefresh, until close.
func (sv *standbyView) reloadTokens(logger *slog.Logger) {
	defer close(sv.done)
	if sv.tokens == nil {
		return
	}
	t := time.NewTicker(standbyRefresh)
	defer t.Stop()
	var last string
	for {
		select {
		case <-sv.stop:
			return
		case <-t.C:
		}
		err := sv.tokens.Reload()
		switch {
		case err != nil && err.Error() != last:
			logger.Warn("cluster: reloading the tokens on the standby (the last ones read still apply)", "err", err)
			last = err.Error()
		case err == nil && last != "":
			logger.Info("cluster: the standby reloads the tokens again")
			last = ""
		}
	}
}

// close closes the view once the reads under way are done: later reads
// get 503 (the caller has already switched the node's handler).
func (sv *standbyView) close() {
	sv.mu.Lock()
	sv.closed = true
	sv.mu.Unlock()
	close(sv.stop)
	<-sv.done
	if err := sv.log.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
		slog.Default().Warn("cluster: closing the standby's view", "err", err)
	}
}
