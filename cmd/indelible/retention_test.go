package main

import (
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	for s, want := range map[string]time.Duration{"": 0, "400d": 400 * 24 * time.Hour, "24h": 24 * time.Hour, "36h30m": 36*time.Hour + 30*time.Minute, "1d": 24 * time.Hour} {
		if got, err := parseRetention(s); err != nil || got != want {
			t.Errorf("parseRetention(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"d", "0d", "-1d", "1.5d", "12h", "x", "400", "99999999999d"} {
		if _, err := parseRetention(s); err == nil {
			t.Errorf("parseRetention(%q) accepted", s)
		}
	}
}
