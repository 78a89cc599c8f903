package eventstore

import (
	"strconv"
	"testing"
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
