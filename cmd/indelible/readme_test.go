package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEEventsWalkthrough runs the shell block of the README's events
// walk-through verbatim (only the server URL is replaced by the test
// server's) with bash, in a directory holding the server's indelible-data,
// and the binary on PATH as indelible.
func TestREADMEEventsWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "### Events walk-through\n")
	if !ok {
		t.Fatal("README has no events walk-through")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("events walk-through has no sh block")
	}
	block, _, ok = strings.Cut(block, "```\n")
	if !ok {
		t.Fatal("unterminated sh block")
	}
	work := t.TempDir()
	p := startEvents(t, filepath.Join(work, "indelible-data"))
	script := strings.ReplaceAll(block, "http://127.0.0.1:8080", p.url)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binPath)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README walk-through failed: %v\n%s", err, out)
	}
	for _, want := range []string{`{"events":[{"index":1}]}`, "TIME", "carol", `"outcome":"denied"`, "verified: event 1", "repo.delete"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walk-through output lacks %q:\n%s", want, out)
		}
	}

	// The banner's commands work as printed, too.
	_, try, ok := strings.Cut(p.banner, "Try:\n")
	if !ok || !strings.Contains(try, `-d '{"action":"demo.hello"}'`) {
		t.Fatalf("banner without a curl appending an event:\n%s", p.banner)
	}
	cmd = exec.Command("bash", "-euo", "pipefail", "-c", try)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binPath)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("banner commands failed: %v\n%s", err, out)
	}
	// The receipt line fetches the index the banner's first curl gets on a
	// quiet log (the tree size at start): event 1, after the first admin
	// token's event 0.
	if !strings.Contains(try, "/v1/events/1/receipt") {
		t.Errorf("banner's receipt line does not fetch event 1:\n%s", try)
	}
	for _, want := range []string{`"index":`, "demo.hello", "verified: event 1", "origin " + p.origin} {
		if !strings.Contains(string(out), want) {
			t.Errorf("banner commands' output lacks %q:\n%s", want, out)
		}
	}
}
