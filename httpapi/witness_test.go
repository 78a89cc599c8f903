package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	whttp "github.com/transparency-dev/witness/client/http"
	wwitness "github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/tlogtest"
	itlog "indelible.dev/tlog"
	"indelible.dev/witness"
)

// Test data: the tessera testdata log (internal/tlogtest), with its signed
// checkpoints, a cosignature vector key and a litewitness key.
const (
	tesseraVKey = tlogtest.TesseraVKey
	tesseraSKey = tlogtest.TesseraSKey
	tesseraCP0  = "example.com/log/testdata\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.com/log/testdata M9e0lhxJACzE1KoUdqKuPa+9p6R7dSW8BlEvrg/noo8FkGg6PbJoRNOcdjqjOq89wVvTA60eubCc4oufo5BvIVEgtQc=\n"
	tesseraCP14 = "example.com/log/testdata\n14\nSvCd38yNade7xEPY1a/aAc1M3A2AHYVF8lIiUnsH1ao=\n\n— example.com/log/testdata M9e0lu8roIpjC+NXEG7JDkajIahoYDYWgxDtxfx/6rzLoztU9t/PvivZ48xt8ygJpjzaboSpkbVv3Jb+D3NdXWQf5wo=\n"
	tesseraCP15 = "example.com/log/testdata\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\n\n— example.com/log/testdata M9e0luh4jTG+UMBqOUo9/q+yAEvx1ilBEniMvjf1zfcBOhg+CKubMt53MvIt/uEWP6zdkdIQzd/fmwlM/dlPWF74ewI=\n"
	tesseraExt  = "example.com/log/testdata\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\next line one\n\n— example.com/log/testdata M9e0loVMPXaMf6ZlulpW5/VUG39P4B7o68qaw+BK0sjrvuW55y1FyNUwSv4t6cIUpCmMcxrLPW+aBe2R/eQIsmUSEgY=\n"
	proof14to15 = "GiUtVP0XhIaZ/fl7ReMLgw+9YUtjFAt8kaTdfOe2u/I=\nN4bcGOdfRQ1JnxGcHq7iDdgpPyH8nQhxShjXKxzWDrU=\n3cFRCtyHVxAUTugFyRgo30efbl+BVxdTQDIGg5H61SA=\nbC+VwvrJbalNVjfkdI8kUgs7mJoXrqiXCE7bgnD28pY=\n"

	witnessSeed = "85d4c6b99bb41b01cf2fc3611275b3a2bb094c418c65597eba32277e328f3639"
	witnessVKey = "witness.example.com/w1+a7df00f4+BH2nLFiWOYsfK4bFRNwprxpSWoAvvDirH64MERtOVgn2"

	sigsumOrigin = "sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562"
	sigsumVKey   = sigsumOrigin + "+5202289b+Af/cLU2Y5BJNP+r3iMDC+av9eWCD0fBJVDfzAux5zxAP"
)

var tesseraEntries = tlogtest.TesseraEntries

func signCP(t testing.TB, skey string, cp itlog.Checkpoint) string {
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	out, err := itlog.SignCheckpoint(cp, s)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func testCosigner(t testing.TB) *itlog.Cosigner {
	seed, _ := hex.DecodeString(witnessSeed)
	c, err := itlog.NewCosigner("witness.example.com/w1", ed25519.NewKeyFromSeed(seed), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustVerifier(t testing.TB, vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// startWitness opens a witness in dir for the tessera and sigsum logs and
// serves it.
func startWitness(t testing.TB, dir string) (*witness.Witness, *httptest.Server) {
	t.Helper()
	w, err := witness.Open(dir, witness.Options{
		Cosigner: testCosigner(t),
		Logs: []witness.Log{
			{Origin: "example.com/log/testdata", Verifiers: []note.Verifier{mustVerifier(t, tesseraVKey)}},
			{Origin: sigsumOrigin, Verifiers: []note.Verifier{mustVerifier(t, sigsumVKey)}},
		},
		GossipInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{})
	s.MountWitness(w, WitnessConfig{AdminToken: "secret-admin-token"})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); w.Close() })
	return w, ts
}

func post(t testing.TB, url, body string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Post(url, "", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func addBody(old int64, proof, cp string) string {
	return fmt.Sprintf("old %d\n%s\n%s", old, proof, cp)
}

func stored(w *witness.Witness, origin string) string {
	b, err := w.Checkpoint(origin)
	if errors.Is(err, witness.ErrNoCheckpoint) {
		return "<none>"
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// verifyCosig checks the response lines with transparency-dev/formats.
func verifyCosig(t testing.TB, signedCP, resp string) {
	t.Helper()
	fv, err := fnote.NewVerifierForCosignatureV1(witnessVKey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(signedCP+resp), note.VerifierList(fv))
	if err != nil {
		t.Fatalf("cosignature does not verify with formats: %v\n%s%s", err, signedCP, resp)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != "witness.example.com/w1" {
		t.Fatalf("unexpected verified signatures %v", n.Sigs)
	}
	ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
	if err != nil || time.Since(ts) > time.Minute || time.Until(ts) > time.Minute {
		t.Fatalf("cosignature timestamp %v, %v", ts, err)
	}
}

// TestAddCheckpointTable drives every row of the add-checkpoint status table
// (c2sp.org/tlog-witness, newest text) through HTTP, checking the
// status, the headers, the body, and that the stored state moved only on 200.
func TestAddCheckpointTable(t *testing.T) {
	m := tlogtest.NewTreeStrings(tesseraEntries...)
	other := tlogtest.NewTreeStrings("uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once", "doce", "trece", "catorce", "quince")
	cp := func(n int64) string {
		return signCP(t, tesseraSKey, itlog.Checkpoint{Origin: "example.com/log/testdata", Tree: tlog.Tree{N: n, Hash: m.Root(n)}})
	}
	const origin = "example.com/log/testdata"
	unknownKey, _, _ := note.GenerateKey(nil, "example.com/unknown")
	impostorKey, _, _ := note.GenerateKey(nil, origin) // same name, different key
	flipSig := func(s string) string {
		i := strings.LastIndex(s, "=\n") - 3
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	var tooMany strings.Builder
	for i := 0; i < 64; i++ {
		tooMany.WriteString("GiUtVP0XhIaZ/fl7ReMLgw+9YUtjFAt8kaTdfOe2u/I=\n")
	}
	size0WrongRoot := signCP(t, tesseraSKey, itlog.Checkpoint{Origin: origin, Tree: tlog.Tree{N: 0, Hash: m.Root(1)}})
	forked15 := signCP(t, tesseraSKey, itlog.Checkpoint{Origin: origin, Tree: tlog.Tree{N: 15, Hash: other.Root(15)}})
	unknownSig := strings.TrimSuffix(tesseraCP15, "\n") + "\n— other.example/w " + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 76)) + "\n"
	badProof := tlogtest.ProofLines(m.ConsistencyProof(4, 15))
	badProof = "AAAA" + badProof[4:]

	type row struct {
		name     string
		setup    []string // bodies that must each get 200 first
		body     string
		status   int
		wantBody string // exact body, if set
		wantCT   string // exact Content-Type, if set
		cosigned string // on 200: the signed checkpoint the response cosigns
		// unchanged: on 200 the witness keeps what it stored (the
		// checkpoint it already holds: cosigned again, not rewritten, so
		// the new cosignature's timestamp may differ from the stored one)
		unchanged bool
	}
	rows := []row{
		{name: "first checkpoint, old 0", body: addBody(0, "", tesseraCP15), status: 200, cosigned: tesseraCP15},
		{name: "vector proof 14 to 15", setup: []string{addBody(0, "", tesseraCP14)}, body: addBody(14, proof14to15, tesseraCP15), status: 200, cosigned: tesseraCP15},
		{name: "computed proof 4 to 15", setup: []string{addBody(0, "", cp(4))}, body: addBody(4, tlogtest.ProofLines(m.ConsistencyProof(4, 15)), tesseraCP15), status: 200, cosigned: tesseraCP15},
		{name: "size 0 with the empty root", body: addBody(0, "", tesseraCP0), status: 200, cosigned: tesseraCP0},
		{name: "unknown origin", body: addBody(0, "", signCP(t, unknownKey, itlog.Checkpoint{Origin: "example.com/unknown", Tree: tlog.Tree{N: 1, Hash: m.Root(1)}})), status: 404},
		{name: "untrusted key for a known origin", body: addBody(0, "", signCP(t, impostorKey, itlog.Checkpoint{Origin: origin, Tree: tlog.Tree{N: 15, Hash: m.Root(15)}})), status: 403},
		{name: "bad signature by the known key", body: addBody(0, "", flipSig(tesseraCP15)), status: 403},
		{name: "old larger than new", body: addBody(16, "", tesseraCP15), status: 400},
		{name: "stale old size", setup: []string{addBody(0, "", cp(4))}, body: addBody(1, tlogtest.ProofLines(m.ConsistencyProof(1, 15)), tesseraCP15), status: 409, wantBody: "4\n", wantCT: "text/x.tlog.size"},
		{name: "old 0 when the witness is ahead", setup: []string{addBody(0, "", cp(4))}, body: addBody(0, "", tesseraCP15), status: 409, wantBody: "4\n", wantCT: "text/x.tlog.size"},
		{name: "size 0 with a wrong root", body: addBody(0, "", size0WrongRoot), status: 422},
		{name: "old 0 with a proof", body: addBody(0, "GiUtVP0XhIaZ/fl7ReMLgw+9YUtjFAt8kaTdfOe2u/I=\n", tesseraCP15), status: 422},
		{name: "bad proof", setup: []string{addBody(0, "", cp(4))}, body: addBody(4, badProof, tesseraCP15), status: 422},
		{name: "proof for the wrong old size", setup: []string{addBody(0, "", cp(4))}, body: addBody(4, tlogtest.ProofLines(m.ConsistencyProof(5, 15)), tesseraCP15), status: 422},
		{name: "same size same root", setup: []string{addBody(0, "", tesseraCP15)}, body: addBody(15, "", tesseraCP15), status: 200, cosigned: tesseraCP15, unchanged: true},
		{name: "same size same root with a proof", setup: []string{addBody(0, "", tesseraCP15)}, body: addBody(15, proof14to15, tesseraCP15), status: 422},
		{name: "same size different root", setup: []string{addBody(0, "", tesseraCP15)}, body: addBody(15, "", forked15), status: 422},
		{name: "extra unknown signature", body: addBody(0, "", unknownSig), status: 200, cosigned: unknownSig},
		{name: "extension lines", body: addBody(0, "", tesseraExt), status: 200, cosigned: tesseraExt},
		{name: "malformed: empty body", body: "", status: 400},
		{name: "malformed: no blank line", body: "old 0\n" + tesseraCP15[:20], status: 400},
		{name: "malformed: leading zero", body: "old 00\n\n" + tesseraCP15, status: 400},
		{name: "malformed: negative", body: "old -1\n\n" + tesseraCP15, status: 400},
		{name: "malformed: not old", body: "new 0\n\n" + tesseraCP15, status: 400},
		{name: "malformed: two spaces", body: "old  0\n\n" + tesseraCP15, status: 400},
		{name: "malformed: proof not base64", body: "old 1\nnot base64\n\n" + tesseraCP15, status: 400},
		{name: "malformed: proof hash short", body: "old 1\nGiUtVP0XhIaZ/fl7ReMLgw+9YUtjFAt8kaTdfOe2u/A\n\n" + tesseraCP15, status: 400},
		{name: "malformed: missing checkpoint", body: "old 0\n\n", status: 400},
		{name: "malformed: checkpoint without signatures", body: "old 0\n\nexample.com/log/testdata\n15\nrKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=\n", status: 400},
		{name: "malformed: checkpoint size leading zero", body: addBody(0, "", strings.Replace(tesseraCP15, "\n15\n", "\n015\n", 1)), status: 400},
		{name: "malformed: CRLF", body: strings.ReplaceAll(addBody(0, "", tesseraCP15), "\n", "\r\n"), status: 400},
		{name: "more than 63 proof lines", body: addBody(1, tooMany.String(), tesseraCP15), status: 400},
		{name: "body over 64 KiB", body: "old 0\n\n" + strings.Repeat("x", 64<<10), status: 413},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			w, ts := startWitness(t, t.TempDir())
			for _, s := range r.setup {
				if st, _, b := post(t, ts.URL+"/add-checkpoint", s); st != 200 {
					t.Fatalf("setup: %d %s", st, b)
				}
			}
			before := stored(w, origin)
			st, hdr, body := post(t, ts.URL+"/add-checkpoint", r.body)
			if st != r.status {
				t.Fatalf("status %d, want %d; body %q", st, r.status, body)
			}
			if r.wantCT != "" && hdr.Get("Content-Type") != r.wantCT {
				t.Fatalf("Content-Type %q, want %q", hdr.Get("Content-Type"), r.wantCT)
			}
			if r.wantBody != "" && body != r.wantBody {
				t.Fatalf("body %q, want %q", body, r.wantBody)
			}
			after := stored(w, origin)
			if st != 200 {
				if after != before {
					t.Fatalf("state moved on %d:\nbefore %q\nafter  %q", st, before, after)
				}
				if st != 409 && !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
					t.Fatalf("error Content-Type %q", hdr.Get("Content-Type"))
				}
				return
			}
			verifyCosig(t, r.cosigned, body)
			// The stored checkpoint is the cosigned one, with only the
			// verified log signature and our cosignature.
			text, _, _ := itlog.SplitNote([]byte(r.cosigned))
			want := string(text) + "\n" + strings.Split(string(r.cosigned[len(text)+1:]), "\n")[0] + "\n" + body
			if r.unchanged {
				want = before
			}
			if after != want {
				t.Fatalf("stored %q, want %q", after, want)
			}
			// The monitoring endpoint serves it.
			resp, err := http.Get(ts.URL + "/" + witness.OriginHash(origin) + "/checkpoint")
			if err != nil {
				t.Fatal(err)
			}
			mb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(mb) != want {
				t.Fatalf("monitoring endpoint: %d %q", resp.StatusCode, mb)
			}
		})
	}
}

// TestForkedOriginRefused checks that a same-size different-root submission
// records fork evidence, and the origin is refused (403 naming the reason)
// until the admin endpoint clears it.
func TestForkedOriginRefused(t *testing.T) {
	const origin = "example.com/log/testdata"
	other := tlogtest.NewTreeStrings("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o")
	w, ts := startWitness(t, t.TempDir())
	if st, _, b := post(t, ts.URL+"/add-checkpoint", addBody(0, "", tesseraCP14)); st != 200 {
		t.Fatal(st, b)
	}
	if st, _, b := post(t, ts.URL+"/add-checkpoint", addBody(14, "", tesseraCP14)); st != 200 {
		t.Fatal(st, b)
	}
	// Same size 14, different root: 422 and evidence.
	forked14 := signCP(t, tesseraSKey, itlog.Checkpoint{Origin: origin, Tree: tlog.Tree{N: 14, Hash: other.Root(14)}})
	if st, _, _ := post(t, ts.URL+"/add-checkpoint", addBody(14, "", forked14)); st != 422 {
		t.Fatalf("status %d, want 422", st)
	}
	st, _, body := post(t, ts.URL+"/add-checkpoint", addBody(14, proof14to15, tesseraCP15))
	if st != 403 || !strings.Contains(body, "fork") {
		t.Fatalf("forked origin: %d %q, want 403 naming the fork", st, body)
	}
	resp, err := http.Get(ts.URL + "/v1/witness/forks")
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(fb), `"origin":"example.com/log/testdata"`) || !strings.Contains(string(fb), "two roots for size 14") {
		t.Fatalf("forks: %s", fb)
	}
	forks, _ := w.Forks()
	if len(forks) != 1 || witness.VerifyEvidence(forks[0], mustVerifier(t, tesseraVKey)) != nil {
		t.Fatalf("evidence %+v does not verify", forks)
	}
	// Clearing needs the token.
	clearFork := func(token string) int {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/witness/clear-fork?origin="+url.QueryEscape(origin), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := clearFork("wrong"); st != 403 {
		t.Fatalf("clear-fork with a wrong token: %d", st)
	}
	if st := clearFork("secret-admin-token"); st != 200 {
		t.Fatalf("clear-fork: %d", st)
	}
	st, _, body = post(t, ts.URL+"/add-checkpoint", addBody(14, proof14to15, tesseraCP15))
	if st != 200 {
		t.Fatalf("after clear-fork: %d %q", st, body)
	}
}

// TestWitnessDrivenByTransparencyDevClient drives the witness with the
// independent client github.com/transparency-dev/witness/client/http.
func TestWitnessDrivenByTransparencyDevClient(t *testing.T) {
	m := tlogtest.NewTreeStrings(tesseraEntries...)
	_, ts := startWitness(t, t.TempDir())
	u, _ := url.Parse(ts.URL)
	c := whttp.NewWitness(u, http.DefaultClient)
	ctx := context.Background()
	cp4 := signCP(t, tesseraSKey, itlog.Checkpoint{Origin: "example.com/log/testdata", Tree: tlog.Tree{N: 4, Hash: m.Root(4)}})
	if _, _, err := c.Update(ctx, 0, []byte(cp4), nil); err != nil {
		t.Fatalf("first update: %v", err)
	}
	// A stateless client learns the size from the 409.
	_, size, err := c.Update(ctx, 0, []byte(tesseraCP15), nil)
	if !errors.Is(err, wwitness.ErrCheckpointStale) || size != 4 {
		t.Fatalf("stale update: size %d, err %v", size, err)
	}
	p, _ := itlog.ProveConsistency(4, 15, m)
	proof := make([][]byte, len(p))
	for i := range p {
		proof[i] = p[i][:]
	}
	body, _, err := c.Update(ctx, 4, []byte(tesseraCP15), proof)
	if err != nil {
		t.Fatalf("update 4 -> 15: %v", err)
	}
	verifyCosig(t, tesseraCP15, string(body))
	// Its error mapping sees our statuses as the spec's.
	if _, _, err := c.Update(ctx, 15, []byte(strings.Replace(tesseraCP15, "example.com/log/testdata\n", "example.com/nope\n", 1)), nil); !errors.Is(err, wwitness.ErrUnknownLog) {
		t.Fatalf("unknown log: %v", err)
	}
	bad := []byte(tesseraCP15)
	bad[len(bad)-5] ^= 1
	if _, _, err := c.Update(ctx, 15, bad, nil); !errors.Is(err, wwitness.ErrNoValidSignature) {
		t.Fatalf("bad signature: %v", err)
	}
}

// TestLitewitnessVectors replays the litewitness v0.6.1 testdata bodies
// (cross-checked vectors) with the statuses of tlog-witness HEAD.
func TestLitewitnessVectors(t *testing.T) {
	const sigsumSig1 = "— " + sigsumOrigin + " UgIom7fPZTqpxWWhyjWduBvTvGVqsokMbqTArsQilegKoFBJQjUFAmQ0+YeSPM3wfUQMFSzVnnNuWRTYrajXpNUbIQY=\n"
	const sigsumSig3 = "— " + sigsumOrigin + " UgIom2VbtIcdFbwFAy1n7s6IkAxIY6J/GQOTuZF2ORV39d75cbAj2aQYwyJre36kezNobZs4SUUdrcawfAB8WVrx6go=\n"
	const sigsumSig5 = "— " + sigsumOrigin + " UgIomw/EOJmWi0i1FQsOj+etB7F8IccFam/jgd6wzRns4QPVmyEZtdvl1U2KEmLOZ/ASRcWJi0tW90dJWAShei7sDww=\n"
	cp1 := sigsumOrigin + "\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n" + sigsumSig1
	cp3 := sigsumOrigin + "\n3\nRcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0=\n\n" + sigsumSig3
	cp5 := sigsumOrigin + "\n5\nQrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY=\n\n" + sigsumSig5
	p13 := "KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nKgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	p15 := "KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n+fUDV+k970B4I3uKrqJM4aP1lloPZP8mvr2Z4wRw2LI=\nKgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	p35 := "KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nKgMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nwgiIFdZfYNv6WU1OllBKsWnLYIS/DBMqt8Uh/S4OukE=\nKgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	last := "KgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	p35bad := strings.Replace(p35, last, last[:41]+"BA=", 1) // litewitness: last proof hash ...AAABA=
	badSig3 := strings.Replace(cp3, "rx6go=", "rx6gx=", 1)
	unknown := strings.ReplaceAll(cp3, "e562", "e563")
	w, ts := startWitness(t, t.TempDir())
	steps := []struct {
		body   string
		status int
		resp   string
	}{
		{addBody(0, "", cp1), 200, ""},
		{addBody(1, p13, cp3), 200, ""},
		{addBody(1, p15, cp5), 409, "3\n"},
		{addBody(3, "", badSig3), 403, ""},
		{addBody(3, "", unknown), 404, ""},
		{addBody(3, p35bad, cp5), 422, ""},
		{addBody(3, p35, cp5), 200, ""},
		{addBody(0, "", cp5), 409, "5\n"},
	}
	for i, s := range steps {
		st, hdr, body := post(t, ts.URL+"/add-checkpoint", s.body)
		if st != s.status {
			t.Fatalf("step %d: status %d, want %d (%q)", i, st, s.status, body)
		}
		if s.resp != "" && (body != s.resp || hdr.Get("Content-Type") != "text/x.tlog.size") {
			t.Fatalf("step %d: %q %q", i, body, hdr.Get("Content-Type"))
		}
	}
	got, _ := w.Checkpoint(sigsumOrigin)
	if !strings.HasPrefix(string(got), sigsumOrigin+"\n5\n") {
		t.Fatalf("final state %q", got)
	}
}

// TestObserve checks POST /v1/witness/observe: comparing checkpoints seen
// elsewhere with the witness's view.
func TestObserve(t *testing.T) {
	const origin = "example.com/log/testdata"
	m := tlogtest.NewTreeStrings(tesseraEntries...)
	other := tlogtest.NewTreeStrings("x", "y", "z", "w", "v", "u", "t", "s", "r", "q", "p", "o", "n", "m", "l")
	w, ts := startWitness(t, t.TempDir())
	observe := func(body string) (int, string) {
		st, _, b := post(t, ts.URL+"/v1/witness/observe", body)
		return st, b
	}
	if st, b := observe(tesseraCP15); st != 200 || !strings.Contains(b, `"result":"no-view"`) {
		t.Fatalf("before any cosignature: %d %s", st, b)
	}
	if st, b, _ := post(t, ts.URL+"/add-checkpoint", addBody(0, "", tesseraCP15)); st != 200 {
		t.Fatal(st, b)
	}
	if st, b := observe(tesseraCP15); st != 200 || !strings.Contains(b, `"result":"consistent"`) {
		t.Fatalf("same checkpoint: %d %s", st, b)
	}
	// A smaller checkpoint: without a log URL no proof can be built.
	cp4 := signCP(t, tesseraSKey, itlog.Checkpoint{Origin: origin, Tree: tlog.Tree{N: 4, Hash: m.Root(4)}})
	if st, b := observe(cp4); st != 200 || !strings.Contains(b, `"result":"unverified"`) {
		t.Fatalf("different size without a log URL: %d %s", st, b)
	}
	if st, _ := observe(strings.Replace(tesseraCP15, "M9e0", "M9e1", 1)); st != 403 {
		t.Fatalf("bad signature: %d", st)
	}
	if st, _ := observe("example.com/nope\n1\n" + tesseraCP15[len("example.com/log/testdata\n15\n"):]); st != 404 {
		t.Fatalf("unknown log: %d", st)
	}
	if st, _ := observe(strings.Repeat("x", 70<<10)); st != 413 {
		t.Fatalf("oversized: %d", st)
	}
	if forks, _ := w.Forks(); len(forks) != 0 {
		t.Fatalf("evidence without a fork: %+v", forks)
	}
	// Same size, different root, signed by the log: a fork.
	split := signCP(t, tesseraSKey, itlog.Checkpoint{Origin: origin, Tree: tlog.Tree{N: 15, Hash: other.Root(15)}})
	if st, b := observe(split); st != 200 || !strings.Contains(b, `"result":"fork"`) {
		t.Fatalf("split view: %d %s", st, b)
	}
	forks, _ := w.Forks()
	if len(forks) != 1 || forks[0].Source != "observe" {
		t.Fatalf("forks %+v", forks)
	}
	// Observing the same pair again records nothing new.
	observe(split)
	if forks, _ := w.Forks(); len(forks) != 1 {
		t.Fatalf("duplicate evidence: %d records", len(forks))
	}
	if st, _, b := post(t, ts.URL+"/add-checkpoint", addBody(15, "", tesseraCP15)); st != 403 || !strings.Contains(b, "fork") {
		t.Fatalf("after an observed fork: %d %s", st, b)
	}
}
