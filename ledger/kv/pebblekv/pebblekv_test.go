package pebblekv_test

import (
	"testing"

	"indelible.dev/ledger/kv"
	"indelible.dev/ledger/kv/kvtest"
	"indelible.dev/ledger/kv/pebblekv"
)

func TestConformance(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Store {
		s, err := pebblekv.Open(t.TempDir(), pebblekv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
