package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"indelible.dev/client"
	"indelible.dev/internal/tlogtest"
)

// TestEventsTailFollowsPastLifetime runs the binary with a stream lifetime
// of 700 ms: `indelible tail -n 0 -f` resumes across the server's closes
// (from where the first stream started, before any event arrived) and
// prints every event once, in order; then its token is revoked and tail
// stops, with an error, without printing the event appended after.
func TestEventsTailFollowsPastLifetime(t *testing.T) {
	p := startEvents(t, filepath.Join(t.TempDir(), "data"), "--stream-max-age", "700ms")
	env := p.env()
	out := mustRun(t, env, "token", "create", "--name", "watcher", "--scope", "read")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	watcher := lines[len(lines)-1]

	cmd := exec.Command(binPath, "tail", "-n", "0", "-f", "--json", "--source", "life")
	cmd.Env = append(os.Environ(), "INDELIBLE_URL="+p.url, "INDELIBLE_TOKEN="+watcher)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &tlogtest.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	recs := make(chan client.Record, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r client.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("tail printed %q: %v", sc.Text(), err)
				continue
			}
			recs <- r
		}
		close(recs)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })

	time.Sleep(1200 * time.Millisecond) // past the first stream's lifetime, no event yet
	var want []int64
	for i := range 6 {
		out := mustRun(t, env, "append", "--action", fmt.Sprintf("life.%d", i), "--source", "life")
		idx, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		want = append(want, idx)
		time.Sleep(300 * time.Millisecond)
	}
	var got []int64
	deadline := time.After(15 * time.Second)
	for len(got) < len(want) {
		select {
		case r, ok := <-recs:
			if !ok {
				t.Fatalf("tail -f exited after %v: %s", got, stderr)
			}
			got = append(got, r.Index)
		case <-deadline:
			t.Fatalf("tail -f printed %v in 15 s, want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("tail -f printed %v, want %v", got, want)
	}

	mustRun(t, env, "token", "revoke", "watcher")
	after := mustRun(t, env, "append", "--action", "life.after", "--source", "life")
	timeout := time.After(15 * time.Second)
	for done := false; !done; {
		select {
		case r, ok := <-recs:
			if ok {
				t.Fatalf("tail -f printed event %d (%s appended after the revocation)", r.Index, strings.TrimSpace(after))
			}
			recs = nil // closed: wait for the exit
		case err := <-exited:
			if err == nil {
				t.Fatalf("tail -f exited 0 after its token was revoked: %s", stderr)
			}
			done = true
		case <-timeout:
			t.Fatalf("tail -f still running 15 s after its token was revoked: %s", stderr)
		}
	}
	if s := stderr.String(); !strings.Contains(s, "401") && !strings.Contains(strings.ToLower(s), "unauthenticated") {
		t.Errorf("tail -f's error does not say the token was refused: %q", s)
	}
}
