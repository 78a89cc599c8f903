package witness

import (
	"errors"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/time/rate"
)

// Bounds on what anyone on the network can make the witness do or keep.
const (
	// maxObserveFetches bounds the comparisons that fetch a log's tiles
	// (Observe and gossip) running at once.
	maxObserveFetches = 4
	// observeRate and observeBurst bound how often such comparisons start,
	// per second, over all clients.
	observeRate  = 4
	observeBurst = 8
	// observeCacheSize bounds the remembered comparison results, keyed by
	// (origin, size, root) of the observed checkpoint.
	observeCacheSize = 4096
	// unverifiedTTL is how long a failed comparison (the log's tiles could
	// not be fetched or did not match) is remembered: long enough to stop a
	// flood, short enough to retry once the log is back.
	unverifiedTTL = time.Minute
	// MaxEvidencePerOrigin bounds the fork evidence records kept per
	// origin: once a real fork exists, one record proves it, and a log
	// serving many views must not fill the witness's disk.
	MaxEvidencePerOrigin = 32
	// MaxReasonLen bounds the free-text reason and source of a fork record
	// (peers send their own reasons).
	MaxReasonLen = 512
)

// ErrBusy is returned by Observe when too many comparisons that fetch the
// log's tiles are running or started recently (503 with Retry-After).
var ErrBusy = errors.New("witness: too many checkpoint comparisons in progress, retry later")

// observeLimits bounds and caches the comparisons that fetch tiles.
type observeLimits struct {
	sem     chan struct{}
	limiter *rate.Limiter

	mu    sync.Mutex
	cache map[observeKey]observeEntry
	order []observeKey // insertion order, for eviction
}

type observeKey struct {
	origin string
	tree   tlog.Tree // the observed checkpoint's
}

// observeEntry is a comparison result, valid while our view is still ours.
type observeEntry struct {
	ours    tlog.Tree
	obs     Observation
	expires time.Time // zero: does not expire
}

func newObserveLimits() observeLimits {
	return observeLimits{
		sem:     make(chan struct{}, maxObserveFetches),
		limiter: rate.NewLimiter(observeRate, observeBurst),
		cache:   make(map[observeKey]observeEntry),
	}
}

// lookup returns a remembered result for k under our view ours.
func (o *observeLimits) lookup(k observeKey, ours tlog.Tree, now time.Time) (Observation, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.cache[k]
	if !ok || e.ours != ours || (!e.expires.IsZero() && now.After(e.expires)) {
		return Observation{}, false
	}
	return e.obs, true
}

// remember stores a result, evicting the oldest past observeCacheSize.
func (o *observeLimits) remember(k observeKey, e observeEntry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.cache[k]; !ok {
		o.order = append(o.order, k)
	}
	o.cache[k] = e
	for len(o.cache) > observeCacheSize {
		delete(o.cache, o.order[0])
		o.order = o.order[1:]
	}
}

// acquire takes a comparison slot, or returns ErrBusy.
func (o *observeLimits) acquire() error {
	select {
	case o.sem <- struct{}{}:
	default:
		return ErrBusy
	}
	if !o.limiter.Allow() {
		<-o.sem
		return ErrBusy
	}
	return nil
}

func (o *observeLimits) release() { <-o.sem }

// cleanText makes a peer's free text safe to store and log: control
// characters dropped, invalid UTF-8 replaced, at most MaxReasonLen bytes.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > MaxReasonLen {
		cut := MaxReasonLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
