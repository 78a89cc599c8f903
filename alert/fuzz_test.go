package alert

import (
	"errors"
	"testing"
	"time"
)

// FuzzParse: any bytes either parse into rules that evaluate without
// panicking, or are refused with ErrInvalid.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodRules))
	f.Add([]byte(burst))
	f.Add([]byte(silent))
	f.Add([]byte("rules:\n  - {name: a, where: 'event.metadata.x > 1', threshold: {count: 2, window: 1m, distinct: metadata.y}, group_by: [metadata.z]}\n"))
	f.Add([]byte("notifiers: [{name: a, type: slack, url: http://x}]\nrules: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		e := NewEvaluator(rs, 0, t0)
		for i, x := range []ev{{0, "a", "1.1.1.1", "", `{"x":2,"y":"q","z":{"k":[1]}}`}, {time.Second, "b", "", "login", ""}} {
			e.Evaluate(x.input(int64(i)))
		}
		e.Tick(t0.Add(time.Hour))
		st, err := e.State()
		if err != nil {
			t.Fatal(err)
		}
		if err := NewEvaluator(rs, 0, t0).Restore(st, t0); err != nil {
			t.Fatal(err)
		}
	})
}
