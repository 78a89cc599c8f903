package loadgen

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"indelible.dev/client"
)

// RateConfig configures EventsAtRate: POST /v1/events at a fixed offered
// rate (open loop), whatever the server's latency.
type RateConfig struct {
	URL        string        // base URL, e.g. http://127.0.0.1:8080
	Token      string        // bearer token with the append scope
	Rate       float64       // offered requests per second; events/s is Rate x PerRequest
	PerRequest int           // events per request: 1 sends one JSON object, more send NDJSON
	Duration   time.Duration // how long to offer requests
	Start      int64         // number of the first event (as EventsConfig.Start)
	IDs        bool          // every event has an id (as EventsConfig.IDs)
	// WaitCheckpoint sends ?wait=checkpoint: the reply comes once a
	// published checkpoint covers the events, with their receipts.
	WaitCheckpoint bool
	// MaxInFlight bounds the requests in flight (connections). A request
	// whose send time comes while all are busy waits for one, and that wait
	// counts in its latency. Default DefaultMaxInFlight.
	MaxInFlight int
	// RootCAs are the only CAs trusted for HTTPS; nil means the system's.
	RootCAs *x509.CertPool
}

// DefaultMaxInFlight is RateConfig.MaxInFlight's default.
const DefaultMaxInFlight = 256

// RateResult is what EventsAtRate measured.
type RateResult struct {
	Config           RateConfig
	Elapsed          time.Duration   // from the first send time to the last reply
	Events, Requests int64           // acknowledged events; requests sent
	Errors           int64           // requests that failed (not 200)
	FirstErr         error           // the first failure, if any
	Latencies        []time.Duration // of the acknowledged requests, from each one's send time, sorted
}

// EventsAtRate sends cfg.Rate requests a second for cfg.Duration, each at
// its scheduled send time (the open loop of Append), and measures every
// request's latency from that scheduled time, not from when a connection
// was free to send it: a server that stalls is charged for the queue it
// causes (no coordinated omission). It returns an error only for a bad
// cfg; failed requests are counted in the result.
func EventsAtRate(ctx context.Context, cfg RateConfig) (RateResult, error) {
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Rate <= 0 || cfg.PerRequest < 1 || cfg.Duration <= 0 || cfg.MaxInFlight < 1 || cfg.MaxInFlight > MaxWriters {
		return RateResult{}, errors.New("loadgen: bad rate config: want a positive rate, duration and events per request, and 1 to 10000 in flight")
	}
	ct := "application/json"
	if cfg.PerRequest > 1 {
		ct = "application/x-ndjson"
	}
	var tag string
	if cfg.IDs {
		var r [4]byte
		rand.Read(r[:])
		tag = hex.EncodeToString(r[:])
	}
	bodies, offs, idOffs := eventBodies(64, cfg.PerRequest, tag)
	route := cfg.URL + "/v1/events"
	if cfg.WaitCheckpoint {
		route += "?wait=checkpoint"
	}
	tr := client.NewTransport(cfg.RootCAs)
	tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost, tr.DisableCompression = cfg.MaxInFlight, cfg.MaxInFlight, true
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: RequestTimeout}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	// Room for every send time of the run (up to a million), so the
	// scheduler runs ahead of busy senders; past that it waits for them,
	// which delays no send time: each is computed, not read from the clock.
	sched := make(chan time.Time, min(int(cfg.Rate*cfg.Duration.Seconds())+cfg.MaxInFlight+1, 1<<20))
	go schedule(ctx, sched, start, start.Add(cfg.Duration), cfg.Rate)
	var (
		res  = RateResult{Config: cfg}
		mu   sync.Mutex
		next atomic.Int64 // requests taken: the next request's number
		wg   sync.WaitGroup
	)
	for range cfg.MaxInFlight {
		wg.Go(func() {
			var lat []time.Duration
			var evs, reqs, errs int64
			var first error
			var body []byte
			for t0 := range sched {
				n := next.Add(1) - 1
				b := n % int64(len(bodies))
				body = patchEvents(body[:0], bodies[b], offs[b], idOffs[b], cfg.Start+n*int64(cfg.PerRequest))
				err := postEvents(ctx, hc, route, cfg.Token, ct, "", body)
				d := time.Since(t0)
				reqs++
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				evs += int64(cfg.PerRequest)
				lat = append(lat, d)
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, lat...)
			res.Events += evs
			res.Requests += reqs
			res.Errors += errs
			if res.FirstErr == nil {
				res.FirstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Latencies)
	return res, nil
}

// patchEvents appends body with its events renumbered from k: each event's
// time (at offs) and, with ids, its id's number (at idOffs).
func patchEvents(dst, body []byte, offs, idOffs []int, k int64) []byte {
	dst = append(dst, body...)
	var tmp []byte
	for j, off := range offs {
		tmp = appendEventTime(tmp[:0], k+int64(j))
		copy(dst[off:], tmp)
		if idOffs != nil {
			tmp = fmt.Appendf(tmp[:0], "%0*d", idWidth, k+int64(j))
			copy(dst[idOffs[j]:], tmp)
		}
	}
	return dst
}

// String is a one-line summary: the achieved rates and the latency
// percentiles from the send times.
func (r RateResult) String() string {
	s := r.Elapsed.Seconds()
	what := "POST-to-durable"
	if r.Config.WaitCheckpoint {
		what = "POST-to-checkpoint"
	}
	return fmt.Sprintf("offered %.0f requests/s x %d events: %d events in %.1fs (%.0f/s), %d requests, %d errors; %s p50 %v p99 %v max %v",
		r.Config.Rate, r.Config.PerRequest, r.Events, s, float64(r.Events)/s, r.Requests, r.Errors, what,
		Percentile(r.Latencies, 50), Percentile(r.Latencies, 99), Percentile(r.Latencies, 100))
}
