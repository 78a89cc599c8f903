package main

import (
	"bytes"
	"strings"
	"testing"

	itlog "indelible.dev/tlog"
)

// TestBenchEvents runs `indelible bench events` against a real events-mode
// server: 500 events/s as 50 requests/s of 10 for half a second, plain and
// with --wait-checkpoint; every request is acknowledged and the log holds
// the events. Bad flags and a missing token are refused by name.
func TestBenchEvents(t *testing.T) {
	p := startEvents(t, t.TempDir())
	for _, wait := range []bool{false, true} {
		args := []string{"bench", "events", "--url", p.url, "--token", p.token, "--rate", "500", "--per-request", "10", "--duration", "500ms"}
		what := "POST-to-durable"
		if wait {
			args, what = append(args, "--wait-checkpoint"), "POST-to-checkpoint"
		}
		out := mustRun(t, nil, args...)
		if !strings.Contains(out, "offered 50 requests/s x 10 events: 250 events in ") || !strings.Contains(out, " 25 requests, 0 errors; "+what+" p50 ") {
			t.Fatalf("bench %v:\n%s", args, out)
		}
	}
	_, body := httpGet(t, p.url+"/checkpoint")
	cp, err := itlog.ParseCheckpoint(string(body[:bytes.Index(body, []byte("\n\n"))+1]))
	if err != nil || cp.N < 500 {
		t.Fatalf("checkpoint after the bench: %v %+v, want at least 500 entries", err, cp)
	}
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"INDELIBLE_TOKEN="}, nil, "no token"},
		{nil, []string{"--token", "x", "--per-request", "0"}, "--per-request 0"},
		{nil, []string{"--token", "x", "--rate", "-1"}, "--rate -1"},
	} {
		args := append([]string{"bench", "events", "--url", p.url, "--duration", "100ms"}, c.args...)
		if _, errOut, code := run(t, c.env, args...); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error naming %q", args, code, errOut, c.want)
		}
	}
}
