package loadgen

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Server histograms Append reads from /metrics (Prometheus text format), as
// series name prefixes up to the "le" label.
const (
	MetricAddDuration   = `indelible_http_request_duration_seconds_bucket{route="/add",`
	MetricCommitLatency = `indelible_commit_latency_seconds_bucket{`
)

// Limits on what is read from /metrics.
const (
	maxMetricsBody = 16 << 20
	maxMetricsLine = 1 << 20
	metricsTimeout = 5 * time.Second
)

// Histogram is a Prometheus cumulative histogram: bucket upper bounds in
// seconds (ascending, +Inf last) and cumulative counts.
type Histogram struct {
	LE     []float64
	Counts []float64
}

// Count returns the number of observations.
func (h Histogram) Count() float64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Minus returns h - old, bucket by bucket: the observations made between two
// scrapes. An old histogram with other buckets (or none) is ignored.
func (h Histogram) Minus(old Histogram) Histogram {
	out := Histogram{LE: h.LE, Counts: slices.Clone(h.Counts)}
	if len(old.Counts) == len(h.Counts) {
		for i := range out.Counts {
			out.Counts[i] -= old.Counts[i]
		}
	}
	return out
}

// Quantile returns the upper bound of the bucket holding quantile q (0 to
// 1), as a duration, or "+Inf".
func (h Histogram) Quantile(q float64) string {
	want := q * h.Count()
	for i, c := range h.Counts {
		if c >= want {
			if math.IsInf(h.LE[i], 1) {
				return "+Inf"
			}
			return time.Duration(h.LE[i] * float64(time.Second)).String()
		}
	}
	return "+Inf"
}

// ParseHistograms reads the buckets of the series whose names start with
// one of prefixes from Prometheus text exposition r, keyed by prefix.
// Lines it does not understand are skipped; it returns nil if no bucket was
// found or r could not be read.
func ParseHistograms(r io.Reader, prefixes ...string) map[string]Histogram {
	out := make(map[string]Histogram)
	sc := bufio.NewScanner(io.LimitReader(r, maxMetricsBody))
	sc.Buffer(nil, maxMetricsLine)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range prefixes {
			rest, ok := strings.CutPrefix(line, name)
			if !ok {
				continue
			}
			// le="0.0001"} 123
			le, rest, ok1 := strings.Cut(strings.TrimPrefix(rest, `le="`), `"} `)
			bound, err1 := strconv.ParseFloat(le, 64)
			count, err2 := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if !ok1 || err1 != nil || err2 != nil {
				continue
			}
			h := out[name]
			h.LE = append(h.LE, bound)
			h.Counts = append(h.Counts, count)
			out[name] = h
		}
	}
	if sc.Err() != nil || len(out) == 0 {
		return nil
	}
	return out
}

// scrapeHistograms reads Append's histograms from the /metrics of the
// server add is on, or returns nil if it cannot.
func scrapeHistograms(add *url.URL) map[string]Histogram {
	u := *add
	u.Path, u.RawQuery = "/metrics", ""
	c := &http.Client{Timeout: metricsTimeout}
	resp, err := c.Get(u.String())
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	return ParseHistograms(resp.Body, MetricAddDuration, MetricCommitLatency)
}
