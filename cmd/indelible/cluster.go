package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"indelible.dev/api"
	"indelible.dev/cluster"
	"indelible.dev/cmd/indelible/internal/eventsetup"
	"indelible.dev/httpapi"
	"indelible.dev/ledger"
	"indelible.dev/ledger/kv/pgkv"
)

// clusterConfig is serve's cluster flags (docs/ha.md, "Cluster").
type clusterConfig struct {
	lease     time.Duration // --lease: 0 means a single node
	node      string        // --node: default cluster.DefaultNode(--listen)
	advertise string        // --advertise: default http(s)://<--listen>
}

func clusterFlags(f *pflag.FlagSet, cfg *serveConfig) {
	f.DurationVar(&cfg.cluster.lease, "lease", 0, "run as one node of an active/standby cluster on a PostgreSQL --store: the lease a node holds while active, on the database's clock (e.g. 10s; default 0: a single node)")
	f.StringVar(&cfg.cluster.node, "node", "", "with --lease: this node's name in /v1/cluster (default: the host name and the listen port)")
	f.StringVar(&cfg.cluster.advertise, "advertise", "", "with --lease: the URL the other nodes forward writes to (default: http(s)://<listen address>)")
}

// activeNode is what runServe needs when it runs as the active node of a
// cluster: the epoch its store commits under, the store's URL (with the
// node's session settings), the listener it shares with the standby
// server, and where to install its handler.
type activeNode struct {
	epoch int64
	dsn   string
	lease *cluster.Lease
	ln    net.Listener
	front *frontHandler
	// serving is closed once front serves the active node's handler: the
	// standby's read-only view may close then.
	serving chan struct{}
}

// frontHandler serves whichever handler the node's role calls for.
type frontHandler struct{ h atomic.Pointer[http.Handler] }

func (f *frontHandler) set(h http.Handler) { f.h.Store(&h) }
func (f *frontHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*f.h.Load()).ServeHTTP(w, r)
}

// sharedListener is the cluster node's listener as runServe sees it: the
// standby server keeps serving on it, so runServe must not close it.
type sharedListener struct{ net.Listener }

func (sharedListener) Close() error { return nil }

// runCluster runs serve as one node of a cluster: a standby (forwarding to
// the active node) until it takes the lease, then runServe as the active
// node until it loses the lease, then a standby again.
func runCluster(ctx context.Context, cfg serveConfig, out io.Writer) error {
	dsn := storeURL(cfg)
	if !pgkv.IsDSN(dsn) {
		return errors.New("--lease needs a PostgreSQL --store (or $" + envStoreVar + "): the nodes share the store")
	}
	tlsConfig, _, err := cfg.tls.load()
	if err != nil {
		return err
	}
	if cfg.cluster.node == "" {
		cfg.cluster.node = cluster.DefaultNode(cfg.listen)
	}
	if cfg.cluster.advertise == "" {
		host, _, err := net.SplitHostPort(cfg.listen)
		if ip := net.ParseIP(host); err != nil || host == "" || (ip != nil && ip.IsUnspecified()) {
			return fmt.Errorf("--advertise: give the URL the other nodes reach this one at (--listen %q names no host they can use)", cfg.listen)
		}
		cfg.cluster.advertise = scheme(tlsConfig) + "://" + cfg.listen
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	lease, err := cluster.Open(ctx, dsn, cluster.Options{Node: cfg.cluster.node, URL: cfg.cluster.advertise, Lease: cfg.cluster.lease, Logger: logger})
	if err != nil {
		return fmt.Errorf("opening the cluster's lease in %s: %w", redactURL(dsn), err)
	}
	defer lease.Close()
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	node := cfg.cluster.node
	fwdKey := forwardKey(cfg, logger)
	// This server answers while the node is not serving as active (the
	// lease taken, the store still opening: "standby").
	standby := httpapi.New(httpapi.Config{Logger: logger, RateLimit: cfg.rateLimit,
		Cluster: standbyCluster(lease, nil, cfg, tlsConfig != nil, fwdKey)})
	front := &frontHandler{}
	front.set(standby.Handler())
	hs := standby.HTTPServer(cfg.listen)
	hs.Handler, hs.TLSConfig = front, tlsConfig
	fmt.Fprintf(out, "cluster node %s: standby on %s, advertising %s, lease %v\n", node, ln.Addr(), cfg.cluster.advertise, cfg.cluster.lease)

	// The standby serves the log's reads from its read-only view of the
	// store (standby.go) once it can open one (a log exists, a checkpoint
	// was released); until then, and while it has none, it forwards
	// everything.
	var (
		view    *standbyView
		viewErr string         // why the last attempt to open a view failed
		closing sync.WaitGroup // views closing: each waits for its reads under way
	)
	defer closing.Wait()
	openView := func() {
		if view != nil {
			return
		}
		v, err := openStandbyView(ctx, cfg, dsn, lease, tlsConfig != nil, fwdKey, logger)
		if err != nil {
			if err.Error() != viewErr { // retried every second: said once
				logger.Warn("cluster: the standby forwards every request: no read-only view of the store", "err", err)
				viewErr = err.Error()
			}
			return
		}
		viewErr = ""
		view = v
		front.set(v.srv.Handler())
		logger.Info("cluster: the standby serves the log's reads from the store", "node", node)
	}
	closeView := func() {
		// In the background: a slow client of a read under way must not
		// hold this loop (the node's handler is already another).
		if v := view; v != nil {
			view = nil
			closing.Go(v.close)
		}
	}
	defer closeView()
	openView()
	retryView := time.NewTicker(time.Second)
	defer retryView.Stop()

	lctx, stopLease := context.WithCancel(context.Background())
	leaseDone := make(chan struct{})
	go func() { lease.Run(lctx); close(leaseDone) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- serveFunc(hs, ln)() }()

	var (
		running      bool
		cancelActive context.CancelFunc
		activeDone   = make(chan error, 1)
		serving      <-chan struct{} // the active node's, until its handler serves
		epoch        int64
		result       error
	)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-serveErr:
			result = fmt.Errorf("serving HTTP: %w", err)
			break loop
		case <-retryView.C:
			if !running {
				openView()
			}
		case <-serving:
			// The active node's handler serves: no request reaches the
			// view any more but those already in it, which close waits
			// for.
			serving = nil
			closeView()
		case c := <-lease.Changes():
			switch {
			case c.Role == cluster.Active && !running:
				running, epoch = true, c.Epoch
				actx, cancel := context.WithCancel(ctx)
				cancelActive = cancel
				acfg := cfg
				ch := make(chan struct{})
				serving = ch
				acfg.active = &activeNode{epoch: c.Epoch, lease: lease, ln: sharedListener{ln}, front: front,
					dsn: must(lease.SessionDSN(dsn)), serving: ch}
				// The view serves reads until the active node's
				// handler takes over.
				go func() { activeDone <- runServe(actx, acfg, out) }()
			case c.Role == cluster.Standby && running:
				// Forward at once; the active server's in-flight writes
				// are not acknowledged any more (the write gate).
				front.set(standby.Handler())
				cancelActive()
			}
		case err := <-activeDone:
			running, serving = false, nil
			cancelActive()
			front.set(standby.Handler())
			closeView() // if the active node never served
			if _, holding := lease.Holding(); holding {
				// A failure (a fenced or ambiguous commit, a fork in the
				// bucket, a refused start) while this node still holds
				// the lease: stop renewing and exit (a restart reloads
				// from the store); the lease expires meanwhile.
				if err == nil {
					err = errors.New("the active node stopped")
				}
				result = err
				break loop
			}
			if err != nil {
				// Its lease ended first: the failure is that of a node
				// that was no longer active (a stale epoch's commit).
				logger.Warn("cluster: the former active node stopped", "node", node, "epoch", epoch, "err", err)
			}
			logger.Info("cluster: standby again", "node", node, "epoch", epoch)
			openView()
		}
	}
	if running {
		cancelActive()
		err := <-activeDone
		if result == nil {
			result = err
		}
	}
	stopLease()
	<-leaseDone
	if epoch > 0 && result == nil {
		// The store is closed: give the lease up so that a standby takes
		// over now rather than when it expires.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := lease.Release(rctx, epoch); err != nil {
			logger.Warn("cluster: giving the lease up", "err", err)
		}
		cancel()
	}
	standby.SetShuttingDown()
	if view != nil {
		view.srv.SetShuttingDown()
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	return result // the view closes after the HTTP server (deferred)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// singleNode is GET /v1/cluster on a node run without --lease: the only
// node, always the active one, epoch 0 (no lease), with its published size;
// named as a cluster node would be by default, after the address it listens
// on (addr holds it once it listens).
func singleNode(l *ledger.Log, addr *atomic.Value, scheme string) *httpapi.ClusterConfig {
	return &httpapi.ClusterConfig{Status: func() api.Cluster {
		a, _ := addr.Load().(string)
		node := cluster.DefaultNode(a)
		cp, _ := l.Published()
		return api.Cluster{Node: node, Role: "active", Active: api.ClusterNode{Node: node, URL: scheme + "://" + a}, Size: uint64(cp.N)}
	}}
}

// standbyCluster is the cluster side of a standby's server: its status
// (role standby; the published size from l, a read-only view, or none), the
// active node it forwards to while the lease names another node, and the
// watch that abandons a forward when the lease changes.
func standbyCluster(lease *cluster.Lease, l *ledger.Log, cfg serveConfig, useTLS bool, fwdKey []byte) *httpapi.ClusterConfig {
	node := cfg.cluster.node
	return &httpapi.ClusterConfig{
		Status: func() api.Cluster {
			c := clusterStatus(lease, l)
			c.Role = cluster.Standby.String()
			return c
		},
		Active: func() (string, bool) {
			st := lease.Status()
			return st.Active.URL, st.Role == cluster.Standby && st.Active.URL != "" && st.Active.Node != node
		},
		Watch:      forwardWatch(lease.Status, cfg.cluster.lease),
		Ready:      activeProbe(lease, useTLS),
		ForwardKey: fwdKey,
	}
}

// clusterStatus is GET /v1/cluster's body: on the active node, with its log's
// published size; on a standby, with the fence's size when it last read the
// lease.
func clusterStatus(lease *cluster.Lease, l *ledger.Log) api.Cluster {
	st := lease.Status()
	c := api.Cluster{Node: st.Node, Role: st.Role.String(), Epoch: st.Epoch,
		Active: api.ClusterNode{Node: st.Active.Node, URL: st.Active.URL}}
	if l != nil {
		cp, _ := l.Published()
		c.Size = uint64(cp.N)
	} else if st.Size > 0 {
		c.Size = uint64(st.Size)
	}
	return c
}

// forwardWatch is a standby's httpapi.ClusterConfig.Watch: a request
// forwarded to the active node at target is abandoned (503, naming the
// cause: the caller retries) once the lease says that node is no longer
// the active one, or that its lease ended unrenewed more than lease/2 ago
// (the margin covers this node's reads of the lease, every lease/3, coming
// late under load). A frozen active node (SIGSTOP, a stalled VM) still
// accepts connections: without this, the caller waited for its own
// timeout. The takeover itself, by this node or another, comes just after
// the old lease's end, so a caller hears within about the lease.
func forwardWatch(status func() cluster.Status, leaseDur time.Duration) func(target string) error {
	margin := leaseDur / 2
	return func(target string) error {
		st := status()
		switch {
		case st.Role == cluster.Active:
			return fmt.Errorf("the active node changed while the request was forwarded: this node (%s) took over the lease from the node at %s: retry", st.Node, target)
		case st.Active.URL == "":
			return fmt.Errorf("the active node (at %s) lost its lease while the request was forwarded, and no node holds it yet: retry", target)
		case st.Active.URL != target:
			return fmt.Errorf("the active node changed while the request was forwarded: %s (at %s) holds the lease now, not the node at %s: retry", st.Active.Node, st.Active.URL, target)
		case !st.Expires.IsZero() && time.Since(st.Expires) > margin:
			return fmt.Errorf("the active node %s (at %s) has not renewed its lease, which ended %v ago (frozen, or cut off from the database): retry",
				st.Active.Node, target, time.Since(st.Expires).Round(time.Millisecond))
		}
		return nil
	}
}

// activeProbe is a standby's readiness: the active node answers /healthz.
// The answer is kept a second, so that probes do not multiply requests.
func activeProbe(lease *cluster.Lease, useTLS bool) func() error {
	var (
		mu   sync.Mutex
		at   time.Time
		last error
	)
	client := &http.Client{Timeout: 2 * time.Second}
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) < time.Second {
			return last
		}
		at = time.Now()
		st := lease.Status()
		if st.Active.URL == "" || st.Active.Node == st.Node {
			last = errors.New("no active node known")
			return last
		}
		u, err := url.JoinPath(st.Active.URL, "healthz")
		if err != nil {
			last = fmt.Errorf("the active node's URL %q: %w", st.Active.URL, err)
			return last
		}
		resp, err := client.Get(u)
		if err != nil {
			last = fmt.Errorf("the active node %s does not answer: %w", st.Active.Node, err)
			return last
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("the active node %s answers %s", st.Active.Node, resp.Status)
			return last
		}
		last = nil
		return nil
	}
}

// activeHTTP returns the cluster part of the active node's HTTP
// configuration: its status, the write gate holding every acknowledgement
// to the lease under this node's epoch, and the key that authenticates the
// callers' addresses of the requests the standbys forward.
func (a *activeNode) activeHTTP(l *ledger.Log, forwardKey []byte) *httpapi.ClusterConfig {
	return &httpapi.ClusterConfig{
		Status: func() api.Cluster { return clusterStatus(a.lease, l) },
		Holding: func() bool {
			e, ok := a.lease.Holding()
			return ok && e == a.epoch
		},
		ForwardKey: forwardKey,
	}
}

// forwardKey is the key with which a standby vouches for the callers'
// addresses of the requests it forwards, and the active node checks them
// (httpapi.ForwardAuthKey): derived from the master key every node of an
// events-mode cluster holds. Nil in raw mode (no master key): the active
// node then sees a standby's address for the requests it forwards.
func forwardKey(cfg serveConfig, logger *slog.Logger) []byte {
	if cfg.mode != "events" {
		return nil
	}
	master, _, err := eventsetup.MasterKey(cfg.dataDir, eventsetup.KeyOptions{File: cfg.masterKey, AllowInData: cfg.keyInData}, false)
	if err == nil {
		var k []byte
		if k, err = httpapi.ForwardAuthKey(master); err == nil {
			return k
		}
	}
	logger.Warn("cluster: forwarded requests carry no authenticated caller address (the master key is not readable yet): "+
		"the active node's rate limit counts them as the standby's", "err", err)
	return nil
}

// serve serves srv on the cluster's listener until ctx ends (the lease is
// lost, or the process stops) or the log fails for good (a fenced or
// ambiguous commit: the process must reload from the store).
func (a *activeNode) serve(ctx context.Context, srv *httpapi.Server, l *ledger.Log, logger *slog.Logger) error {
	a.front.set(srv.Handler())
	if a.serving != nil {
		close(a.serving)
	}
	logger.Info("cluster: active", "epoch", a.epoch)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			srv.SetShuttingDown()
			return nil
		case <-t.C:
			if err := storeStopped(l); err != nil {
				srv.SetShuttingDown()
				return storeFailure(a.dsn, err)
			}
		}
	}
}
