package alert

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"indelible.dev/event"
)

// benchRules returns 50 rules of the kinds docs/alerts.md shows:
// thresholds on exact and prefix matches, some with where, group_by and
// distinct, and absent rules. heavy makes the ten where rules match by
// prefix, a quarter of the benchmark's events each (2.5 CEL evaluations
// per event); otherwise each matches one action in forty, as a rule aimed
// at one kind of event does.
func benchRules(t testing.TB, heavy bool) *Rules {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range 50 {
		fmt.Fprintf(&b, "  - name: r%02d\n", i)
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "    match: {action: kubectl.verb%02d, outcome: denied}\n    threshold: {count: 5, window: 5m}\n    group_by: [actor.id]\n    cooldown: 30m\n", i%40)
		case 1:
			m := fmt.Sprintf("kubectl.verb%02d", i%40)
			if heavy {
				m = fmt.Sprintf("'kubectl.verb%d*'", i%4)
			}
			fmt.Fprintf(&b, "    match: {action: %s}\n    where: 'event.metadata.user_agent.startsWith(\"kubectl/\")'\n    threshold: {count: 100, window: 1m}\n    group_by: [source]\n", m)
		case 2:
			fmt.Fprintf(&b, "    match: {action: [secret.read, secrets.get%d], outcome: denied}\n    threshold: {count: 3, window: 10m, distinct: actor.ip}\n", i)
		case 3:
			fmt.Fprintf(&b, "    kind: absent\n    match: {source: 'kube-apiserver/prod-eu%d'}\n    for: 15m\n", i%3)
		case 4:
			fmt.Fprintf(&b, "    match: {action: indelible.erase}\n    threshold: {count: 1, window: 1m}\n    group_by: [actor.id, resource.id]\n")
		}
	}
	rs, err := Parse("bench.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func benchEvents(n, seed int, base time.Time) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		k := seed*n + i
		evs[i] = event.Event{
			Time:     base.Add(time.Duration(k) * time.Millisecond),
			Actor:    &event.Actor{ID: fmt.Sprintf("user%04d@example.com", k%5000), Type: "user", IP: "10.0.3.7"},
			Action:   fmt.Sprintf("kubectl.verb%02d", k%40),
			Resource: &event.Resource{Type: "pod", ID: fmt.Sprintf("prod/payments-%05d", k%20000)},
			Outcome:  []string{"success", "failure", "denied", "unknown"}[k%4],
			Source:   fmt.Sprintf("kube-apiserver/prod-eu%d", k%3),
			Reason:   "INC-4211 debugging the payment service",
			Metadata: []byte(`{"request_id":"` + fmt.Sprint(k) + `","user_agent":"kubectl/v1.31"}`),
		}
	}
	return evs
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngestRules: batches of 1000 events appended to a real log on
// disk, with no rules, and with the 50 rules of benchRules (typical, and
// heavy) evaluated by the engine. The timed region ends once the engine has evaluated every event,
// so the rules' cost is all in it. Alternate the sub-benchmarks in separate runs to compare them.
// Reported: events/s and CPU-µs per event (the process's user+system time).
func BenchmarkIngestRules(b *testing.B) {
	for _, mix := range []string{"none", "50", "50heavy"} {
		b.Run("rules="+mix, func(b *testing.B) {
			rs := &Rules{}
			if mix != "none" {
				rs = benchRules(b, mix == "50heavy")
			}
			s := newBenchStack(b, rs, mix != "none")
			base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
			batches := make([][]event.Event, 8)
			for k := range batches {
				batches[k] = benchEvents(1000, k, base)
			}
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for i := range b.N {
				if _, err := s.l.Append(context.Background(), "bench", batches[i%len(batches)]); err != nil {
					b.Fatal(err)
				}
			}
			if s.eng != nil {
				cp, _ := s.log.Published()
				for s.eng.Watermark() < cp.N {
					time.Sleep(time.Millisecond)
				}
			}
			el, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			evs := float64(b.N * 1000)
			b.ReportMetric(evs/el.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/evs, "cpu-µs/event")
		})
	}
}
