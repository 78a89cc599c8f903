package eventstore

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"indelible.dev/event"
)

// The blind-index stage's parts, per call (issue 21): a value the cache
// holds, one it does not (the HMAC and the insert), an idempotency key.
func BenchmarkBlindField(b *testing.B) {
	bl := newBlinder(make([]byte, 32))
	vals := make([]string, 4096)
	for i := range vals {
		vals[i] = "user" + strconv.Itoa(i) + "@example.com"
	}
	b.Run("hit", func(b *testing.B) {
		for i := range vals {
			bl.field(fieldActor, vals[i])
		}
		i := 0
		for b.Loop() {
			bl.field(fieldActor, vals[i&4095])
			i++
		}
	})
	b.Run("miss", func(b *testing.B) {
		i := 0
		for b.Loop() {
			bl.forgetIDs()
			bl.field(fieldActor, vals[i&4095])
			i++
		}
	})
	b.Run("idem", func(b *testing.B) {
		i := 0
		for b.Loop() {
			bl.idem("writer", vals[i&4095])
			i++
		}
	})
}

// BenchmarkRequestStages: the request-side stages of Append for 1,000
// events with ids (issue 21), per event, without the store: prepare
// (canonical bytes, idempotency keys), seal (commitment, event key, AES-GCM,
// wrapped key) and the index keys (blind values, 't' and 'f' keys).
func BenchmarkRequestStages(b *testing.B) {
	e := newEnv(b, nil)
	const n = 1000
	evs := benchEvents(n, 0, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC))
	for i := range evs {
		evs[i].ID = fmt.Sprintf("r0123456-%020d", i)
	}
	now := e.clock.Now()
	perEvent := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	}
	b.Run("prepare", func(b *testing.B) {
		for b.Loop() {
			p, err := e.l.prepare(now, "bench", evs)
			if err != nil {
				b.Fatal(err)
			}
			p.blind.done()
		}
		perEvent(b)
	})
	p, err := e.l.prepare(now, "bench", evs)
	if err != nil {
		b.Fatal(err)
	}
	defer p.blind.done()
	day, err := e.l.dayKeyFor(dayOf(now), true)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("seal", func(b *testing.B) {
		ekeys := make([]byte, n*dataKeySize)
		aad := new([eventKeyAADSize]byte)
		for b.Loop() {
			sealed := 0
			for i := range n {
				sealed += sealedSize(len(p.bytes[i]))
			}
			arena := make([]byte, sealed)
			for i := range n {
				var salt [event.SaltSize]byte
				c := event.Commitment(salt, p.bytes[i])
				var tk [timeKeySize]byte
				appendTimeKey(tk[:0], p.evs[i].Time)
				if _, _, err := day.seal(&arena, aad, uint64(i), ekeys[i*dataKeySize:(i+1)*dataKeySize], &tk, &salt, p.bytes[i], &c, false); err != nil {
					b.Fatal(err)
				}
			}
		}
		perEvent(b)
	})
	b.Run("indexkeys", func(b *testing.B) {
		for b.Loop() {
			w := newRequestWrites(n)
			for i := range n {
				w.add(e.l, p.blind, int32(i), &p.evs[i], nil, make([]byte, 0, blindSize))
			}
		}
		perEvent(b)
	})
}
