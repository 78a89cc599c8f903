package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"indelible.dev/client"
	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
)

// eventsProc is a running `indelible serve` in events mode.
type eventsProc struct {
	*serveProc
	token string // the first admin token
}

// startEvents starts the binary in events mode on dir and reads the admin
// token from <dir>/admin.token (checking the banner printed the same one on
// first start).
func startEvents(t testing.TB, dir string, args ...string) *eventsProc {
	t.Helper()
	p := startServe(t, dir, append([]string{"--mode", "events"}, args...)...)
	b, err := os.ReadFile(filepath.Join(dir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(b))
	if strings.Contains(p.banner, "admin token:") && !strings.Contains(p.banner, "admin token:  "+tok+"\n") {
		t.Fatalf("banner's admin token differs from %s:\n%s", adminTokenFile, p.banner)
	}
	return &eventsProc{serveProc: p, token: tok}
}

func (p *eventsProc) env() []string {
	return []string{"INDELIBLE_URL=" + p.url, "INDELIBLE_TOKEN=" + p.token}
}

func (p *eventsProc) client(t testing.TB) *client.Client {
	c, err := client.New(p.url, "", client.WithOptions(client.Options{Token: p.token}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mustRun runs the binary and fails the test unless it exits 0.
func mustRun(t testing.TB, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, env, args...)
	if code != 0 {
		t.Fatalf("indelible %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// kubernetesEventList is a kube-apiserver audit webhook body.
const kubernetesEventList = `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[
{"level":"Metadata","auditID":"5d7c1f0e-aaaa-4c1b-9d3e-000000000001","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods/web-1/exec?command=sh","verb":"create",
 "user":{"username":"MARKER-k8s-user","groups":["system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.31.0",
 "objectRef":{"resource":"pods","subresource":"exec","namespace":"prod","name":"web-1","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":101},
 "requestReceivedTimestamp":"2020-01-02T10:15:00.000000Z","stageTimestamp":"2020-01-02T10:15:00.010000Z"},
{"level":"Metadata","auditID":"5d7c1f0e-aaaa-4c1b-9d3e-000000000002","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/secrets/db","verb":"get",
 "user":{"username":"MARKER-k8s-user"},"sourceIPs":["10.0.0.9"],"objectRef":{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1"},
 "responseStatus":{"metadata":{},"code":403},"requestReceivedTimestamp":"2020-01-02T10:16:00.000000Z","stageTimestamp":"2020-01-02T10:16:00.001000Z"}]}`

// queryJSON runs `indelible query --json args...` and returns the records.
func queryJSON(t testing.TB, env []string, args ...string) []client.Record {
	t.Helper()
	out := mustRun(t, env, append([]string{"query", "--json"}, args...)...)
	var recs []client.Record
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var r client.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("query output line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func indexesOfAppended(res []client.Appended) []int64 {
	var out []int64
	for _, r := range res {
		out = append(out, r.Index)
	}
	return out
}

func indexesOf(recs []client.Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.Index)
	}
	return out
}

// TestEventsEndToEnd drives events mode through the real binary: appends
// (one event, an array, NDJSON from a file and from stdin, Kubernetes),
// queries by every filter and by time range across pages, records and
// receipts, `indelible verify` and an independent check with merkle and
// note, commitments against the public bundles, `indelible audit`, tokens,
// and finally that no event value is in any file of the data directory.
func TestEventsEndToEnd(t *testing.T) {
	const marker = "MARKER-7f3a9c"
	dir := filepath.Join(t.TempDir(), "data")
	p := startEvents(t, dir)
	for _, f := range []string{filepath.Join(dir, adminTokenFile), dir + ".master.key"} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, st)
		}
	}
	// Tokens live in the store beside the events, not in a file.
	if _, err := os.Stat(filepath.Join(dir, tokensFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: %v, want none", tokensFile, err)
	}
	env := p.env()
	ctx := t.Context()
	c := p.client(t)

	// One event from flags.
	out := mustRun(t, env, "append", "--action", "deploy.start", "--actor", marker+"-alice", "--resource", marker+"-svc",
		"--outcome", "success", "--source", "ci", "--reason", marker+" INC-1", "--id", marker+"-id", "--time", "2020-01-02T09:00:00Z",
		"--metadata", `{"secret":"`+marker+`-meta"}`)
	// Index 0 is the server's record of the first admin token (actor
	// indelible): the writers' events start at o.
	const o = 1
	if strings.TrimSpace(out) != strconv.Itoa(o) {
		t.Fatalf("append printed %q, want %d", out, o)
	}
	// An array through the API.
	res, err := c.Append(ctx, []client.Event{{Action: "deploy.end", Actor: &client.Actor{ID: marker + "-bob"}, Outcome: "failure"}, {Action: "login", Actor: &client.Actor{ID: marker + "-alice"}, Outcome: "denied"}}, false)
	if err != nil || len(res) != 2 || res[0].Index != o+1 {
		t.Fatalf("array append: %+v %v", res, err)
	}
	// NDJSON: 250 events a second apart, from a file (3 batches of 100
	// would be the same: the CLI batches by 1,000).
	base := time.Date(2020, 1, 3, 0, 0, 0, 0, time.UTC)
	var nd strings.Builder
	for i := range 250 {
		fmt.Fprintf(&nd, `{"action":"page.view","actor":{"id":"%s-u%d"},"source":"web","time":%q}`+"\n", marker, i%5, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
	}
	ndFile := filepath.Join(t.TempDir(), "events.ndjson")
	os.WriteFile(ndFile, []byte(nd.String()), 0o600)
	out = mustRun(t, env, "append", "--file", ndFile)
	if lines := strings.Fields(out); len(lines) != 250 || lines[0] != strconv.Itoa(o+3) || lines[249] != strconv.Itoa(o+252) {
		t.Fatalf("NDJSON append printed %d lines (%q...)", len(lines), out[:min(len(out), 40)])
	}
	// NDJSON from stdin.
	cmd := exec.Command(binPath, "append", "--file", "-")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(`{"action":"stdin.one"}` + "\n" + `{"action":"stdin.two"}` + "\n")
	if b, err := cmd.Output(); err != nil || strings.Join(strings.Fields(string(b)), ",") != fmt.Sprintf("%d,%d", o+253, o+254) {
		t.Fatalf("append from stdin: %q %v", b, err)
	}
	// Kubernetes.
	kres, err := c.AppendKubernetes(ctx, []byte(kubernetesEventList), false)
	if err != nil || len(kres) != 2 || kres[0].Index != o+255 {
		t.Fatalf("kubernetes: %+v %v", kres, err)
	}
	// The sample EventList of testdata/: 13 audit events (one exec seen at
	// two stages, which get distinct ids). Sent again, it stores nothing:
	// the auditIDs are idempotency keys.
	sample, err := os.ReadFile("../../testdata/kubernetes/eventlist.json")
	if err != nil {
		t.Fatal(err)
	}
	kres, err = c.AppendKubernetes(ctx, sample, false)
	if err != nil || len(kres) != 13 || kres[0].Index != o+257 || kres[12].Index != o+269 {
		t.Fatalf("kubernetes sample: %+v %v", kres, err)
	}
	if again, err := c.AppendKubernetes(ctx, sample, false); err != nil || !slices.Equal(indexesOfAppended(again), indexesOfAppended(kres)) {
		t.Fatalf("kubernetes sample again: %+v %v", again, err)
	}
	const n = 270

	// Every filter.
	for _, tc := range []struct {
		args []string
		want []int64
	}{
		{[]string{"--actor", marker + "-alice"}, []int64{2, 0}}, // 2 has no time: received now, so newest
		{[]string{"--action", "deploy.start"}, []int64{0}},
		{[]string{"--resource", marker + "-svc"}, []int64{0}},
		{[]string{"--outcome", "failure"}, []int64{1, 268}},
		{[]string{"--outcome", "denied", "--source", "kube-apiserver"}, []int64{267, 262, 256}},
		{[]string{"--source", "ci"}, []int64{0}},
		{[]string{"--actor", "MARKER-k8s-user", "--limit", "1000"}, []int64{256, 255}},
		{[]string{"--actor", "bob@example.com", "--outcome", "denied"}, []int64{262}},
	} {
		for i := range tc.want {
			tc.want[i] += o
		}
		if got := indexesOf(queryJSON(t, env, tc.args...)); !slices.Equal(got, tc.want) {
			t.Errorf("query %v: %v, want %v", tc.args, got, tc.want)
		}
	}
	// A time range across pages: newest first, no duplicates, no gaps.
	recs := queryJSON(t, env, "--since", base.Add(10*time.Second).Format(time.RFC3339), "--until", base.Add(200*time.Second).Format(time.RFC3339), "--limit", "33", "--all")
	var want []int64
	for i := int64(199); i >= 10; i-- {
		want = append(want, o+3+i)
	}
	if got := indexesOf(recs); !slices.Equal(got, want) {
		t.Fatalf("time range query: %v\nwant %v", got, want)
	}
	// The table.
	table := mustRun(t, env, "query", "--action", "deploy.start")
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "TIME") ||
		!strings.Contains(lines[1], "2020-01-02T09:00:00Z") || !strings.Contains(lines[1], "deploy.start") || !strings.Contains(lines[1], marker+"-svc") {
		t.Fatalf("query table:\n%s", table)
	}

	// Tokens through the CLI: create (token alone on the last line), use, revoke.
	out = mustRun(t, env, "token", "create", "--name", "ci-bot", "--scope", "append,read")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ciTok := lines[len(lines)-1]
	ciEnv := []string{"INDELIBLE_URL=" + p.url, "INDELIBLE_TOKEN=" + ciTok}
	// Every read above and the token's creation were recorded as events
	// too: the new token's event comes after them.
	out = mustRun(t, ciEnv, "append", "--action", "ci.token.used")
	ciIdx, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil || ciIdx <= o+n {
		t.Fatalf("append with the new token: %q", out)
	}
	if r, err := c.Event(ctx, ciIdx); err != nil || !strings.Contains(string(r.EventBytes), `"submitted_by":"ci-bot"`) {
		t.Fatalf("event %d: %s %v", ciIdx, r.EventBytes, err)
	}
	if out := mustRun(t, env, "token", "list"); !strings.Contains(out, "ci-bot") || strings.Contains(out, ciTok) {
		t.Fatalf("token list:\n%s", out)
	}
	mustRun(t, env, "token", "revoke", "ci-bot")
	if _, errOut, code := run(t, ciEnv, "append", "--action", "x"); code == 0 || !strings.Contains(errOut, "401") {
		t.Fatalf("revoked token: exit %d, %s", code, errOut)
	}
	if _, _, code := run(t, ciEnv, "token", "list"); code == 0 {
		t.Fatal("token list with a non-admin token succeeded")
	}
	// After the event read just now (ciIdx+1) comes the revocation: nothing
	// else was recorded since (the refused requests are not).
	total := ciIdx + 3

	// Wait for a checkpoint covering everything.
	var cpNote []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, cpNote = httpGet(t, p.url+"/checkpoint")
		text, _, _ := itlog.SplitNote(cpNote)
		if cp, err := itlog.ParseCheckpoint(string(text)); err == nil && cp.N == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d:\n%s", total, cpNote)
		}
	}

	// Every record's commitment recomputes and equals the public log entry at
	// its index (read from the bundles, /tile/entries).
	entries := logEntries(ctx, t, c, total)
	for i := range total {
		r, err := c.Event(ctx, i)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got := recomputeCommitment(r); !bytes.Equal(got, r.Commitment) || !bytes.Equal(entries[i], r.Commitment) {
			t.Fatalf("event %d: commitment %x, recomputed %x, log entry %x", i, r.Commitment, got, entries[i])
		}
	}

	// A receipt, verified by `indelible verify` and independently here.
	receipt, err := c.Receipt(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	rfile := filepath.Join(t.TempDir(), "receipt.txt")
	os.WriteFile(rfile, receipt, 0o600)
	out = mustRun(t, nil, "verify", rfile, "--key", p.vkey)
	if !strings.Contains(out, "deploy.start") || !strings.Contains(out, "verified") {
		t.Fatalf("verify printed:\n%s", out)
	}
	verifyIndependently(t, receipt, p.vkey, o)
	// Tampering: each failure exits 1 and names the step.
	for _, tc := range []struct {
		name, from, to, step string
	}{
		{"event bytes", "deploy.start", "deploy.stop", "inclusion proof"},
		{"checkpoint root", "", "", "checkpoint"},
	} {
		bad := receipt
		if tc.from != "" {
			bad = tamperExtra(t, receipt, tc.from, tc.to)
		} else {
			// The checkpoint's size line follows its origin line (the
			// reads above grew the log past total).
			_, rest, _ := strings.Cut(string(receipt), p.origin+"\n")
			size, _, _ := strings.Cut(rest, "\n")
			n, err := strconv.ParseInt(size, 10, 64)
			if err != nil || n < total {
				t.Fatalf("receipt checkpoint size %q", size)
			}
			bad = bytes.Replace(receipt, []byte(p.origin+"\n"+size+"\n"), []byte(p.origin+"\n"+strconv.FormatInt(n+1, 10)+"\n"), 1)
		}
		os.WriteFile(rfile, bad, 0o600)
		if _, errOut, code := run(t, nil, "verify", rfile, "--key", p.vkey); code != 1 || !strings.Contains(errOut, tc.step) {
			t.Errorf("verify of a receipt with tampered %s: exit %d, stderr %q", tc.name, code, errOut)
		}
	}
	otherKey := "other.example/log+12345678+AXs0cGZ3bkxSP4+9P6nXd2VcTTVYzq0xfyvvxI+5/qHK"
	if _, errOut, code := run(t, nil, "verify", filepath.Join(t.TempDir(), "missing"), "--key", otherKey); code == 0 {
		t.Errorf("verify of a missing file exited 0: %s", errOut)
	}

	// indelible audit works unchanged on an events-mode log.
	if out, errOut, code := run(t, nil, "audit", "--url", p.url, "--key", p.vkey, "--no-progress"); code != 0 {
		t.Fatalf("audit: exit %d\n%s\n%s", code, out, errOut)
	}

	// Event 0 records the first admin token's creation, by the server.
	if r, err := c.Event(ctx, 0); err != nil || !strings.Contains(string(r.EventBytes), `"action":"indelible.token.create"`) ||
		!strings.Contains(string(r.EventBytes), `"submitted_by":"indelible"`) || strings.Contains(string(r.EventBytes), p.token) {
		t.Fatalf("event 0: %s %v, want the first admin token's creation", r.EventBytes, err)
	}

	// No event value anywhere in the data directory, WAL included.
	p.stop(t)
	needles := map[string][]byte{}
	for _, m := range []string{marker, "MARKER-k8s-user", "deploy.start", "page.view"} {
		needles[fmt.Sprintf("%q in plaintext", m)] = []byte(m)
	}
	tlogtest.CheckNotInFiles(t, dir, needles)
}

// tamperExtra rewrites the event bytes in a receipt's extra line.
func tamperExtra(t testing.TB, receipt []byte, from, to string) []byte {
	lines := strings.Split(string(receipt), "\n")
	extra, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[1], "extra "))
	extra = bytes.Replace(extra, []byte(from), []byte(to), 1)
	lines[1] = "extra " + base64.StdEncoding.EncodeToString(extra)
	return []byte(strings.Join(lines, "\n"))
}

// verifyIndependently checks an event receipt with a few lines of code over
// x/mod's note and transparency-dev/merkle, not Indelible's own packages:
// the checkpoint's signature, the commitment from salt and event bytes, the
// RFC 6962 leaf hash, and the inclusion proof.
func verifyIndependently(t testing.TB, receipt []byte, vkey string, index int64) {
	t.Helper()
	head, cpNote, ok := strings.Cut(string(receipt), "\n\n")
	if !ok {
		t.Fatal("receipt: no blank line before the checkpoint")
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(cpNote), note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	cpLines := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseUint(cpLines[1], 10, 64)
	root, _ := base64.StdEncoding.DecodeString(cpLines[2])
	lines := strings.Split(head, "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" || !strings.HasPrefix(lines[1], "extra ") || lines[2] != "index "+strconv.FormatInt(index, 10) {
		t.Fatalf("receipt head %q", lines[:3])
	}
	extra, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[1], "extra "))
	if err != nil || len(extra) < 34 {
		t.Fatalf("extra: %v", err)
	}
	commitment := sha256.Sum256(append([]byte("indelible/event/v1\x00"), extra...))
	leaf := rfc6962.DefaultHasher.HashLeaf(commitment[:])
	var hashes [][]byte
	for _, l := range lines[3:] {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), size, leaf, hashes, root); err != nil {
		t.Fatalf("independent inclusion check: %v", err)
	}
}

// TestEventsTail runs `indelible tail`: the last N events oldest first, and
// with -f the new ones as they are appended.
func TestEventsTail(t *testing.T) {
	p := startEvents(t, filepath.Join(t.TempDir(), "data"))
	env := p.env()
	var appended []int64
	for i := range 5 {
		out := mustRun(t, env, "append", "--action", fmt.Sprintf("tail.%d", i), "--source", "tailtest")
		i, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		appended = append(appended, i)
	}
	// Filtered by source: the server's own events (the first admin token,
	// the reads) are not the test's.
	if got := indexesOf(func() []client.Record {
		out := mustRun(t, env, "tail", "-n", "3", "--json", "--source", "tailtest")
		var recs []client.Record
		for _, l := range strings.Fields(out) {
			var r client.Record
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		return recs
	}()); !slices.Equal(got, appended[2:]) {
		t.Fatalf("tail -n 3: %v", got)
	}

	lines := startLines(t, env, "tail", "-n", "1", "-f", "--action", "tail.new")
	// Append until the follower shows one (it may connect after the first).
	deadline := time.After(10 * time.Second)
	for {
		mustRun(t, env, "append", "--action", "tail.new", "--actor", "follower")
		select {
		case l := <-lines:
			if strings.HasPrefix(l, "TIME") {
				l = <-lines
			}
			if !strings.Contains(l, "tail.new") || !strings.Contains(l, "follower") {
				t.Fatalf("tail -f printed %q", l)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("tail -f printed nothing in 10 s")
		}
	}
}

// recomputeCommitment computes a record's event commitment from its salt and
// event bytes, here, independently of package event.
func recomputeCommitment(r client.Record) []byte {
	h := sha256.New()
	h.Write([]byte("indelible/event/v1\x00"))
	h.Write(r.Salt)
	h.Write(r.EventBytes)
	return h.Sum(nil)
}
